// A fake DigitalOcean API v2 for tests: an in-process HTTP server on 127.0.0.1:0 with a stateful account (see
// state.ts), the real status codes, error bodies and rate-limit headers, pagination with links.pages, request
// checking against DigitalOcean's OpenAPI schemas, and injectable faults (faults.ts).
//
// Start it, point the client at it with DIGITALOCEAN_API_URL=fake.url and DIGITALOCEAN_TOKEN=fake.token:
//
//   const fake = await FakeDigitalOcean.start({ activation: { afterPolls: 2 } });
//   try { ... } finally { await fake.stop(); }
//
// Hooks for end-to-end tests whose "droplet" is really a local namespace edge:
//   onDropletCreated(droplet)  called when POST /v2/droplets creates a droplet, before the 202 is sent. Return
//                              { ipv4, ipv6 } to choose the public addresses the droplet reports once active (ipv6
//                              only counts when the droplet asked for IPv6 and is not from a custom image). The
//                              droplet object carries name, tags, region, size, image, sshKeys and userData (the
//                              #cloud-config with the pinned host key). May be async.
//   onDropletDeleted(droplet)  called when a droplet is deleted (DELETE by id or by tag). May be async.
// Observe the account through `fake.state` (droplets, sshKeys, reservedIps, domains, firewalls, images, tags) and
// every request through `fake.requests`. `fake.violations` lists requests that did not match the OpenAPI schemas
// (they were answered 400); tests should assert it stays empty.
import { randomBytes, randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { type Fault, type FaultResponse, Faults, HTML_BAD_GATEWAY, HTML_GATEWAY_TIMEOUT } from './faults.js';
import { checkRequest, checkResponse, matchOperation } from './openapi.js';
import {
  actionJson,
  dropletJson,
  firewallJson,
  imageJson,
  recordJson,
  regionJson,
  reservedIpJson,
  reservedIpv6Json,
  sizeJson,
} from './render.js';
import {
  type Activation,
  ApiFailure,
  type DropletAddresses,
  type FakeDroplet,
  FakeState,
  REGIONS,
  SIZES,
  ipToInt,
  notFound,
  unprocessable,
} from './state.js';

export interface FakeOptions {
  /** The one token the fake accepts; random by default. */
  token?: string;
  /** The fake's clock in ms (share the test's fake clock so ratelimit-reset and afterMs agree with it). */
  now?: () => number;
  dropletLimit?: number;
  activation?: Activation;
  onDropletCreated?: (droplet: FakeDroplet) => DropletAddresses | void | Promise<DropletAddresses | void>;
  onDropletDeleted?: (droplet: FakeDroplet) => void | Promise<void>;
  /** How a single-page collection writes its links: `{}` (default) or `{"pages": {}}`. */
  singlePageLinks?: 'empty' | 'pages';
  /** Also check the fake's own 2xx bodies against the response schemas (into responseViolations). */
  checkResponses?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  /** The operation it matched, e.g. "POST /v2/droplets". */
  operation: string | undefined;
  status: number;
  authorized: boolean;
}

type Handler = (request: ApiRequest) => Promise<Reply> | Reply;

interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
}

interface Reply {
  status: number;
  body?: unknown;
  /** DigitalOcean's DELETE of a droplet answers 204 with a content-type header; most 204s have none. */
  contentType?: boolean;
}

const LIST_KEYS_WINDOW_MS = 60_000;
const LIST_KEYS_LIMIT = 10;

export class FakeDigitalOcean {
  readonly token: string;
  readonly state: FakeState;
  readonly faults = new Faults();
  readonly requests: RecordedRequest[] = [];
  readonly violations: string[] = [];
  readonly responseViolations: string[] = [];
  url = '';
  rateLimit = { limit: 5000, remaining: 5000 };
  readonly #options: FakeOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #routes: Array<{ method: string; pattern: RegExp; names: string[]; handler: Handler }> = [];
  #listKeyCalls: number[] = [];
  #landings: Array<{ at: number; apply: () => Promise<void> }> = [];

  private constructor(options: FakeOptions) {
    this.#options = options;
    this.token = options.token ?? `dop_v1_${randomBytes(32).toString('hex')}`;
    this.state = new FakeState({
      now: options.now ?? Date.now,
      dropletLimit: options.dropletLimit ?? 25,
      activation: options.activation ?? {},
      ...(options.onDropletCreated ? { onDropletCreated: options.onDropletCreated } : {}),
      ...(options.onDropletDeleted ? { onDropletDeleted: options.onDropletDeleted } : {}),
    });
    this.#server = createServer((req, res) => void this.handle(req, res));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    this.routes();
  }

  static async start(options: FakeOptions = {}): Promise<FakeDigitalOcean> {
    const fake = new FakeDigitalOcean(options);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}`;
    return fake;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Adds a fault; see faults.ts. */
  inject(fault: Fault): { readonly hits: number } {
    return this.faults.add(fault);
  }

  /** Requests matching an operation key ("POST /v2/droplets"). */
  calls(operation: string): RecordedRequest[] {
    return this.requests.filter((r) => r.operation === operation);
  }

  private now(): number {
    return this.state.now();
  }

  // ---- plumbing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const query = Object.fromEntries(url.searchParams.entries());
    const raw = await readBody(req);
    const record: RecordedRequest = {
      method,
      path,
      query,
      body: undefined,
      operation: undefined,
      status: 0,
      authorized: false,
    };
    this.requests.push(record);
    const send = (status: number, body: unknown, extra: Record<string, string> = {}, contentType = true): void => {
      record.status = status;
      const headers: Record<string, string> = { ...this.rateHeaders(), 'x-request-id': randomUUID(), ...extra };
      if (contentType) headers['content-type'] = 'application/json; charset=utf-8';
      res.writeHead(status, headers);
      res.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
    };
    const fail = (status: number, id: string, message: string, extra: Record<string, string> = {}): void =>
      send(status, { id, message, request_id: randomUUID() }, extra);

    const operation = matchOperation(method, path);
    record.operation = operation?.key;
    this.rateLimit.remaining = Math.max(0, this.rateLimit.remaining - 1);
    const auth = req.headers.authorization;
    record.authorized = auth === `Bearer ${this.token}`;
    if (!record.authorized) {
      // Mixed-case id, as DigitalOcean sends it on this path.
      fail(401, 'Unauthorized', 'Unable to authenticate you');
      return;
    }
    let body: unknown;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        fail(400, 'bad_request', 'unable to parse request body');
        return;
      }
    }
    record.body = body;

    await this.landDue();
    const fault = this.faults.take(method, path);
    if (fault && fault.response.kind === 'lost') {
      // No answer, ever: the socket stays open until the client gives up. The effect comes now or later.
      record.status = -1;
      const landAt = this.requests.length + (fault.response.landAfterRequests ?? 0);
      this.#landings.push({
        at: landAt,
        apply: () => this.apply(method, path, query, body, operation).then(() => undefined),
      });
      await this.landDue();
      return;
    }
    if (fault && fault.when !== 'after') {
      if (fault.response.kind === 'delay') {
        await new Promise((resolve) => setTimeout(resolve, (fault.response as { ms: number }).ms));
      } else {
        this.sendFault(fault.response, record, res, send);
        return;
      }
    }

    const outcome = await this.apply(method, path, query, body, operation);
    if ('failure' in outcome) {
      fail(outcome.failure.status, outcome.failure.id, outcome.failure.message, outcome.failure.headers);
      return;
    }
    const reply = outcome.reply;
    if (fault && fault.when === 'after') {
      this.sendFault(fault.response, record, res, send);
      return;
    }
    if (this.#options.checkResponses && operation && reply.status < 300) {
      this.responseViolations.push(...checkResponse(operation.key, reply.status, reply.body));
    }
    send(reply.status, reply.body, {}, reply.body !== undefined || reply.contentType === true);
  }

  /** Checks the request against the schemas and runs its route: the request's effect on the account. */
  private async apply(
    method: string,
    path: string,
    query: Record<string, string>,
    body: unknown,
    operation: ReturnType<typeof matchOperation>,
  ): Promise<
    { reply: Reply } | { failure: { status: number; id: string; message: string; headers?: Record<string, string> } }
  > {
    if (operation) {
      const problems = checkRequest(operation.key, operation.params, query, body);
      if (problems.length > 0) {
        this.violations.push(...problems);
        return { failure: { status: 400, id: 'bad_request', message: problems.join('; ') } };
      }
    }
    const route = this.#routes.find((r) => r.method === method && r.pattern.test(path));
    if (!route)
      return { failure: { status: 404, id: 'not_found', message: 'The resource you requested could not be found.' } };
    const match = route.pattern.exec(path)!;
    const params = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
    try {
      return { reply: await route.handler({ method, path, params, query, body }) };
    } catch (error) {
      if (error instanceof ApiFailure) {
        const retryAfter = (error as ApiFailure & { retryAfter?: number }).retryAfter;
        return {
          failure: {
            status: error.status,
            id: error.id,
            message: error.message,
            ...(retryAfter === undefined ? {} : { headers: { 'retry-after': String(retryAfter) } }),
          },
        };
      }
      return { failure: { status: 500, id: 'server_error', message: `fake: ${(error as Error).message}` } };
    }
  }

  /** Lost requests whose time to take effect has come. */
  private async landDue(): Promise<void> {
    const due = this.#landings.filter((l) => l.at <= this.requests.length);
    this.#landings = this.#landings.filter((l) => l.at > this.requests.length);
    for (const landing of due) await landing.apply();
  }

  private sendFault(
    response: FaultResponse,
    record: RecordedRequest,
    res: ServerResponse,
    send: (status: number, body: unknown, extra?: Record<string, string>, contentType?: boolean) => void,
  ): void {
    switch (response.kind) {
      case 'rate-limit': {
        const extra: Record<string, string> = {};
        if (response.retryAfterSeconds !== undefined) extra['retry-after'] = String(response.retryAfterSeconds);
        if (response.remaining !== undefined) this.rateLimit.remaining = response.remaining;
        if (response.resetInSeconds !== undefined)
          extra['ratelimit-reset'] = String(Math.ceil(this.now() / 1000) + response.resetInSeconds);
        send(429, { id: 'too_many_requests', message: 'API Rate limit exceeded.' }, extra);
        return;
      }
      case 'server-error':
        send(response.status ?? 500, { id: 'server_error', message: 'Server Error' });
        return;
      case 'html-bad-gateway': {
        record.status = response.status ?? 502;
        res.writeHead(record.status, { 'content-type': 'text/html', ...this.rateHeaders() });
        res.end(record.status === 504 ? HTML_GATEWAY_TIMEOUT : HTML_BAD_GATEWAY);
        return;
      }
      case 'please-try-again':
        send(422, { id: 'unprocessable_entity', message: 'Please try again' });
        return;
      case 'pending-event':
        send(422, { id: 'unprocessable_entity', message: 'Droplet already has a pending event.' });
        return;
      case 'drop-connection':
        record.status = -1;
        res.socket?.destroy();
        return;
      case 'raw':
        record.status = response.status;
        res.writeHead(response.status, { ...this.rateHeaders(), ...response.headers });
        res.end(response.body);
        return;
      case 'delay':
      case 'lost':
        return;
    }
  }

  private rateHeaders(): Record<string, string> {
    return {
      'ratelimit-limit': String(this.rateLimit.limit),
      'ratelimit-remaining': String(this.rateLimit.remaining),
      'ratelimit-reset': String(Math.ceil(this.now() / 1000) + 3600),
    };
  }

  private route(method: string, template: string, handler: Handler): void {
    const names: string[] = [];
    const pattern = new RegExp(
      `^${template.replace(/\{([^}]+)\}/g, (_, name: string) => {
        names.push(name);
        return '([^/]+)';
      })}$`,
    );
    this.#routes.push({ method, pattern, names, handler });
  }

  /** A collection page with DigitalOcean's links and meta. */
  private page(request: ApiRequest, key: string, items: unknown[]): Reply {
    const perPage = Math.min(200, Number(request.query.per_page ?? 20));
    const total = items.length;
    const last = Math.max(1, Math.ceil(total / perPage));
    const page = Math.max(1, Number(request.query.page ?? 1));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const link = (n: number): string => {
      const params = new URLSearchParams({ ...request.query, page: String(n), per_page: String(perPage) });
      return `${this.url}${request.path}?${params.toString()}`;
    };
    const pages: Record<string, string> = {};
    if (page > 1) {
      pages.first = link(1);
      pages.prev = link(page - 1);
    }
    if (page < last) {
      pages.next = link(page + 1);
      pages.last = link(last);
    }
    const links =
      Object.keys(pages).length > 0 ? { pages } : this.#options.singlePageLinks === 'pages' ? { pages: {} } : {};
    return { status: 200, body: { [key]: slice, links, meta: { total } } };
  }

  // ---- the API

  private routes(): void {
    const s = this.state;
    const droplet = (id: string): FakeDroplet => {
      const found = s.droplets.get(Number(id));
      if (!found) throw notFound();
      return found;
    };
    const hasTag = (tags: string[], tag: string): boolean => tags.some((t) => t.toLowerCase() === tag.toLowerCase());

    this.route('GET', '/v2/account', () => ({ status: 200, body: { account: s.account } }));
    this.route('GET', '/v2/sizes', (r) =>
      this.page(
        r,
        'sizes',
        SIZES.map((size) => sizeJson(size.slug)),
      ),
    );
    this.route('GET', '/v2/regions', (r) => this.page(r, 'regions', REGIONS.map(regionJson)));

    // droplets
    this.route('GET', '/v2/droplets', (r) => {
      let list = [...s.droplets.values()];
      if (r.query.tag_name) list = list.filter((d) => hasTag(d.tags, r.query.tag_name!));
      if (r.query.name) list = list.filter((d) => d.name.toLowerCase() === r.query.name!.toLowerCase());
      for (const d of list) s.advance(d);
      return this.page(r, 'droplets', list.map(dropletJson));
    });
    this.route('POST', '/v2/droplets', async (r) => {
      const created = await s.createDroplet(r.body as Record<string, unknown>);
      return {
        status: 202,
        body: {
          droplet: dropletJson(created),
          links: {
            actions: [
              { id: created.createActionId, rel: 'create', href: `${this.url}/v2/actions/${created.createActionId}` },
            ],
          },
        },
      };
    });
    this.route('DELETE', '/v2/droplets', async (r) => {
      const tag = r.query.tag_name;
      const doomed = [...s.droplets.values()].filter((d) => tag && hasTag(d.tags, tag));
      for (const d of doomed) await s.deleteDroplet(d.id);
      return { status: 204, contentType: true };
    });
    this.route('GET', '/v2/droplets/{id}', (r) => ({
      status: 200,
      body: { droplet: dropletJson(s.pollDroplet(Number(r.params.id))) },
    }));
    this.route('DELETE', '/v2/droplets/{id}', async (r) => {
      await s.deleteDroplet(droplet(r.params.id!).id);
      return { status: 204, contentType: true };
    });
    this.route('GET', '/v2/droplets/{id}/actions', (r) =>
      this.page(r, 'actions', s.readDropletActions(Number(r.params.id)).map(actionJson)),
    );
    this.route('GET', '/v2/actions/{id}', (r) => ({
      status: 200,
      body: { action: actionJson(s.readAction(Number(r.params.id))) },
    }));

    // SSH keys
    this.route('GET', '/v2/account/keys', (r) => {
      const now = this.now();
      this.#listKeyCalls = this.#listKeyCalls.filter((t) => now - t < LIST_KEYS_WINDOW_MS);
      if (this.#listKeyCalls.length >= LIST_KEYS_LIMIT) {
        const wait = Math.ceil((this.#listKeyCalls[0]! + LIST_KEYS_WINDOW_MS - now) / 1000);
        throw Object.assign(new ApiFailure(429, 'too_many_requests', 'API Rate limit exceeded.'), { retryAfter: wait });
      }
      this.#listKeyCalls.push(now);
      return this.page(r, 'ssh_keys', [...s.sshKeys.values()]);
    });
    this.route('POST', '/v2/account/keys', (r) => {
      const body = r.body as { name: string; public_key: string };
      return { status: 201, body: { ssh_key: s.addSshKey(body.name, body.public_key) } };
    });
    this.route('GET', '/v2/account/keys/{key}', (r) => {
      const key = s.findSshKey(r.params.key!);
      if (!key) throw notFound();
      return { status: 200, body: { ssh_key: key } };
    });
    this.route('DELETE', '/v2/account/keys/{key}', (r) => {
      const key = s.findSshKey(r.params.key!);
      if (!key) throw notFound();
      s.sshKeys.delete(key.id);
      return { status: 204 };
    });

    // reserved IPs
    this.route('GET', '/v2/reserved_ips', (r) =>
      this.page(
        r,
        'reserved_ips',
        [...s.reservedIps.values()].map((x) => reservedIpJson(s, x)),
      ),
    );
    this.route('POST', '/v2/reserved_ips', (r) => {
      const body = r.body as { droplet_id?: number; region?: string };
      const n = s.nextAddressIndex();
      const ip = `198.51.100.${(n % 250) + 1}`;
      if (body.droplet_id !== undefined) {
        const target = droplet(String(body.droplet_id));
        const reserved = s.addReservedIp(ip, target.region);
        const action = s.reservedIpAction(ip, { type: 'assign', droplet_id: target.id });
        return {
          status: 202,
          body: {
            reserved_ip: reservedIpJson(s, reserved),
            links: {
              droplets: [{ id: target.id, rel: 'droplet', href: `${this.url}/v2/droplets/${target.id}` }],
              actions: [{ id: action.id, rel: 'assign_ip', href: `${this.url}/v2/actions/${action.id}` }],
            },
          },
        };
      }
      return {
        status: 202,
        body: { reserved_ip: reservedIpJson(s, s.addReservedIp(ip, body.region ?? 'nyc3')), links: {} },
      };
    });
    this.route('GET', '/v2/reserved_ips/{ip}', (r) => {
      const reserved = s.reservedIps.get(r.params.ip!);
      if (!reserved) throw notFound();
      return { status: 200, body: { reserved_ip: reservedIpJson(s, reserved) } };
    });
    this.route('DELETE', '/v2/reserved_ips/{ip}', (r) => {
      const reserved = s.reservedIps.get(r.params.ip!);
      if (!reserved) throw notFound();
      if (reserved.locked) throw unprocessable('Reserved IP is locked by a pending action.');
      s.reservedIps.delete(reserved.ip);
      return { status: 204 };
    });
    this.route('POST', '/v2/reserved_ips/{ip}/actions', (r) => {
      const action = s.reservedIpAction(r.params.ip!, r.body as { type?: string; droplet_id?: number });
      return {
        status: 201,
        body: { action: { ...actionJson(action), project_id: '746c6152-2fa2-11ed-92d3-27aaa54e4988' } },
      };
    });
    this.route('GET', '/v2/reserved_ips/{ip}/actions/{id}', (r) => {
      const action = s.readAction(Number(r.params.id));
      if (action.resourceType !== 'reserved_ip' || action.resourceId !== ipToInt(r.params.ip!)) throw notFound();
      return { status: 200, body: { action: actionJson(action) } };
    });

    // reserved IPv6: actions are read back at /v2/actions/{id}, the only action path the API has for them
    const reservedIpv6 = (ip: string) => {
      const found = s.reservedIpv6s.get(ip);
      if (!found) throw notFound();
      return found;
    };
    this.route('GET', '/v2/reserved_ipv6', (r) =>
      this.page(
        r,
        'reserved_ipv6s',
        [...s.reservedIpv6s.values()].map((x) => reservedIpv6Json(s, x)),
      ),
    );
    this.route('POST', '/v2/reserved_ipv6', (r) => {
      const body = r.body as { region_slug: string };
      return { status: 201, body: { reserved_ipv6: reservedIpv6Json(s, s.addReservedIpv6(body.region_slug)) } };
    });
    this.route('GET', '/v2/reserved_ipv6/{ip}', (r) => ({
      status: 200,
      body: { reserved_ipv6: reservedIpv6Json(s, reservedIpv6(r.params.ip!)) },
    }));
    this.route('DELETE', '/v2/reserved_ipv6/{ip}', (r) => {
      const reserved = reservedIpv6(r.params.ip!);
      if (reserved.busy) throw unprocessable('Reserved IPv6 has a pending action.');
      if (reserved.dropletId !== null)
        throw unprocessable('Reserved IPv6 must be unassigned before it can be deleted.');
      s.reservedIpv6s.delete(reserved.ip);
      return { status: 204 };
    });
    this.route('POST', '/v2/reserved_ipv6/{ip}/actions', (r) => ({
      status: 201,
      body: {
        action: actionJson(s.reservedIpv6Action(r.params.ip!, r.body as { type?: string; droplet_id?: number })),
      },
    }));

    // domains
    const domain = (name: string) => {
      const found = s.domains.get(name.toLowerCase());
      if (!found) throw notFound();
      return found;
    };
    this.route('GET', '/v2/domains/{domain}', (r) => {
      const d = domain(r.params.domain!);
      return { status: 200, body: { domain: { name: d.name, ttl: d.ttl, zone_file: `$ORIGIN ${d.name}.\n` } } };
    });
    this.route('GET', '/v2/domains/{domain}/records', (r) => {
      const d = domain(r.params.domain!);
      const fqdn = (name: string) => (name === '@' ? d.name : `${name}.${d.name}`);
      let records = [...d.records.values()];
      if (r.query.type) records = records.filter((x) => x.type === r.query.type);
      if (r.query.name) records = records.filter((x) => fqdn(x.name) === r.query.name!.toLowerCase());
      return this.page(r, 'domain_records', records.map(recordJson));
    });
    this.route('POST', '/v2/domains/{domain}/records', (r) => {
      const d = domain(r.params.domain!);
      const body = r.body as { type: string; name: string; data: string; ttl?: number };
      if (body.name.endsWith(`.${d.name}`) || body.name === d.name) {
        throw unprocessable(
          'Name Only valid hostname characters are allowed. The name must be relative to the domain.',
        );
      }
      const record = {
        id: s.nextId(),
        type: body.type,
        name: body.name.toLowerCase(),
        data: body.data,
        ttl: body.ttl ?? 1800,
        priority: null,
        port: null,
        weight: null,
        flags: null,
        tag: null,
      };
      d.records.set(record.id, record);
      return { status: 201, body: { domain_record: recordJson(record) } };
    });
    const record = (r: ApiRequest) => {
      const found = domain(r.params.domain!).records.get(Number(r.params.id));
      if (!found) throw notFound();
      return found;
    };
    this.route('GET', '/v2/domains/{domain}/records/{id}', (r) => ({
      status: 200,
      body: { domain_record: recordJson(record(r)) },
    }));
    const update = (r: ApiRequest): Reply => {
      const found = record(r);
      const body = r.body as Partial<{ type: string; name: string; data: string; ttl: number }>;
      if (body.type !== undefined && body.type !== found.type) throw unprocessable('Type cannot be changed.');
      if (body.name !== undefined) found.name = body.name.toLowerCase();
      if (body.data !== undefined) found.data = body.data;
      if (body.ttl !== undefined) found.ttl = body.ttl;
      return { status: 200, body: { domain_record: recordJson(found) } };
    };
    this.route('PUT', '/v2/domains/{domain}/records/{id}', update);
    this.route('PATCH', '/v2/domains/{domain}/records/{id}', update);
    this.route('DELETE', '/v2/domains/{domain}/records/{id}', (r) => {
      domain(r.params.domain!).records.delete(record(r).id);
      return { status: 204 };
    });

    // firewalls
    this.route('GET', '/v2/firewalls', (r) => this.page(r, 'firewalls', [...s.firewalls.values()].map(firewallJson)));
    const firewallBody = (body: Record<string, unknown>) => {
      const tags = (body.tags as string[] | undefined) ?? [];
      const missing = tags.filter((t) => ![...s.tags].some((x) => x.toLowerCase() === t.toLowerCase()));
      if (missing.length > 0) throw new ApiFailure(400, 'bad_request', `tag ${missing.join(', ')} does not exist`);
      return {
        name: String(body.name),
        inbound_rules: (body.inbound_rules as unknown[] | undefined) ?? [],
        outbound_rules: (body.outbound_rules as unknown[] | undefined) ?? [],
        droplet_ids: (body.droplet_ids as number[] | undefined) ?? [],
        tags,
      };
    };
    this.route('POST', '/v2/firewalls', (r) => {
      const firewall = { id: randomUUID(), createdAt: this.now(), ...firewallBody(r.body as Record<string, unknown>) };
      s.firewalls.set(firewall.id, firewall);
      return { status: 202, body: { firewall: firewallJson(firewall) } };
    });
    const firewall = (id: string) => {
      const found = s.firewalls.get(id);
      if (!found) throw notFound();
      return found;
    };
    this.route('GET', '/v2/firewalls/{id}', (r) => ({
      status: 200,
      body: { firewall: firewallJson(firewall(r.params.id!)) },
    }));
    this.route('PUT', '/v2/firewalls/{id}', (r) => {
      const found = firewall(r.params.id!);
      Object.assign(found, firewallBody(r.body as Record<string, unknown>));
      return { status: 200, body: { firewall: firewallJson(found) } };
    });
    this.route('DELETE', '/v2/firewalls/{id}', (r) => {
      s.firewalls.delete(firewall(r.params.id!).id);
      return { status: 204 };
    });

    // images
    this.route('GET', '/v2/images', (r) => {
      let images = [...s.images.values()];
      if (r.query.private === 'true') images = images.filter((i) => !i.public);
      if (r.query.tag_name) images = images.filter((i) => hasTag(i.tags, r.query.tag_name!));
      return this.page(r, 'images', images.map(imageJson));
    });
    this.route('POST', '/v2/images', (r) => {
      const body = r.body as { name: string; url: string; region: string; description?: string; tags?: string[] };
      if (!REGIONS.includes(body.region)) throw unprocessable('Region is not available');
      for (const tag of body.tags ?? []) s.tags.add(s.canonicalTag(tag));
      const image = s.addCustomImage({
        name: body.name,
        region: body.region,
        url: body.url,
        ...(body.description ? { description: body.description } : {}),
        ...(body.tags ? { tags: body.tags } : {}),
      });
      return { status: 202, body: { image: imageJson(image) } };
    });
    this.route('GET', '/v2/images/{id}', (r) => {
      const image = s.findImage(r.params.id);
      if (!image) throw notFound();
      s.pollImage(image);
      return { status: 200, body: { image: imageJson(image) } };
    });
    this.route('DELETE', '/v2/images/{id}', (r) => {
      const image = s.findImage(r.params.id);
      if (!image || image.public) throw notFound();
      s.images.delete(image.id);
      return { status: 204 };
    });

    // tags
    this.route('POST', '/v2/tags', (r) => {
      const name = s.canonicalTag((r.body as { name: string }).name);
      s.tags.add(name);
      return {
        status: 201,
        body: { tag: { name, resources: { count: s.tagged(name).length, droplets: { count: 0 } } } },
      };
    });
    this.route('GET', '/v2/tags/{tag}', (r) => {
      const name = [...s.tags].find((t) => t.toLowerCase() === r.params.tag!.toLowerCase());
      if (!name) throw notFound();
      return { status: 200, body: { tag: { name, resources: { count: s.tagged(name).length } } } };
    });
    this.route('DELETE', '/v2/tags/{tag}', (r) => {
      const name = [...s.tags].find((t) => t.toLowerCase() === r.params.tag!.toLowerCase());
      if (!name) throw notFound();
      s.tags.delete(name);
      const strip = (tags: string[]) => tags.filter((t) => t.toLowerCase() !== name.toLowerCase());
      for (const d of s.droplets.values()) d.tags = strip(d.tags);
      for (const i of s.images.values()) i.tags = strip(i.tags);
      for (const f of s.firewalls.values()) f.tags = strip(f.tags);
      return { status: 204 };
    });
    const tagResources = (r: ApiRequest, add: boolean): Reply => {
      const name = [...s.tags].find((t) => t.toLowerCase() === r.params.tag!.toLowerCase());
      if (!name) throw notFound();
      for (const resource of (r.body as { resources: Array<{ resource_id: string; resource_type: string }> })
        .resources) {
        if (resource.resource_type !== 'droplet') continue;
        const target = droplet(resource.resource_id);
        target.tags = target.tags.filter((t) => t !== name);
        if (add) target.tags.push(name);
      }
      return { status: 204 };
    };
    this.route('POST', '/v2/tags/{tag}/resources', (r) => tagResources(r, true));
    this.route('DELETE', '/v2/tags/{tag}/resources', (r) => tagResources(r, false));
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
