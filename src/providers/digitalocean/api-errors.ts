// DigitalOcean's error bodies, read defensively: JSON `{id, message, request_id}` in any casing of `id`, the tags
// endpoint's `{error, messages, root_causes}`, or an HTML page from the edge proxy on a 502/504. Whatever arrives,
// the result is a DigitalOceanError whose message quotes DigitalOcean's own words and whose hint says what to do.
// The token never appears: messages are built from the method, the path and DigitalOcean's message only.
import { ProviderError } from '../../lib/errors.js';

export interface ParsedErrorBody {
  /** DigitalOcean's error id, lower-cased ("unprocessable_entity"), when the body had one. */
  id?: string;
  message: string;
  requestId?: string;
}

const MAX_MESSAGE = 300;

/** Never throws: any body (JSON, HTML, empty, binary noise) becomes an id and a one-line message. */
export function parseErrorBody(raw: unknown, status: number, headerRequestId?: string): ParsedErrorBody {
  let body: unknown = raw;
  if (typeof raw === 'string') {
    const text = raw.trim();
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      const message = htmlTitle(text) ?? plainText(text);
      return withRequestId({ message: message || statusText(status) }, headerRequestId);
    }
  }
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const record = body as Record<string, unknown>;
    const id = typeof record.id === 'string' ? record.id.toLowerCase() : undefined;
    const message =
      stringOf(record.message) ??
      stringOf(record.error) ??
      (Array.isArray(record.root_causes)
        ? record.root_causes.filter((c) => typeof c === 'string').join('; ')
        : undefined) ??
      statusText(status);
    const requestId = stringOf(record.request_id) ?? headerRequestId;
    return withRequestId({ ...(id ? { id } : {}), message: clip(message) }, requestId);
  }
  return withRequestId({ message: statusText(status) }, headerRequestId);
}

function withRequestId(parsed: ParsedErrorBody, requestId: string | undefined): ParsedErrorBody {
  return requestId ? { ...parsed, requestId } : parsed;
}

function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function htmlTitle(text: string): string | undefined {
  const title = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(text)?.[1] ?? /<h1[^>]*>([\s\S]*?)<\/h1>/i.exec(text)?.[1];
  return title === undefined ? undefined : clip(plainText(title));
}

function plainText(text: string): string {
  return clip(
    text
      .replace(/<[^>]*>/g, ' ')
      .replace(/[^\x20-\x7e]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
}

function clip(text: string): string {
  const line = text.replace(/\s*\n\s*/g, ' ');
  return line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE - 1)}…` : line;
}

function statusText(status: number): string {
  const known: Record<number, string> = {
    400: 'bad request',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not found',
    409: 'conflict',
    422: 'unprocessable entity',
    429: 'too many requests',
    500: 'internal server error',
    502: 'bad gateway',
    503: 'service unavailable',
    504: 'gateway timeout',
  };
  return known[status] ?? `HTTP ${status}`;
}

export interface DigitalOceanErrorInit {
  method: string;
  path: string;
  status?: number;
  body?: ParsedErrorBody;
  attempts?: number;
  /** Rate limited: how long the attempts were waited out before giving up. */
  overMs?: number;
  /** The request may have taken effect although it failed (5xx, timeout or a dropped connection on a POST). */
  ambiguous?: boolean;
  /** For failures without a response: what went wrong on the way. */
  reason?: string;
}

export class DigitalOceanError extends ProviderError {
  readonly method: string;
  readonly path: string;
  readonly apiId: string | undefined;
  readonly apiMessage: string | undefined;
  readonly requestId: string | undefined;
  readonly ambiguous: boolean;

  constructor(init: DigitalOceanErrorInit) {
    super(messageOf(init), { hint: hintOf(init), ...(init.status === undefined ? {} : { status: init.status }) });
    this.method = init.method;
    this.path = init.path;
    this.apiId = init.body?.id;
    this.apiMessage = init.body?.message;
    this.requestId = init.body?.requestId;
    this.ambiguous = init.ambiguous ?? false;
  }

  /** True for a 404 (the resource does not exist). */
  get notFound(): boolean {
    return this.status === 404;
  }
}

function messageOf(init: DigitalOceanErrorInit): string {
  const where = `${init.method} ${init.path}`;
  const over = init.overMs === undefined ? '' : ` over ${Math.round(init.overMs / 1000)} s`;
  const after = init.attempts && init.attempts > 1 ? ` after ${init.attempts} attempts${over}` : '';
  if (init.status === undefined) return `DigitalOcean API ${where} failed${after}: ${init.reason ?? 'no response'}`;
  if (init.status === 401)
    return `DigitalOcean rejected the API token (401 on ${where}: "${init.body?.message ?? 'unauthorized'}")`;
  const id = init.body?.id ? ` ${init.body.id}` : '';
  const request = init.body?.requestId ? ` [request ${init.body.requestId}]` : '';
  return `DigitalOcean API ${where} failed with ${init.status}${id}${after}: "${init.body?.message ?? ''}"${request}`;
}

const HINTS: ReadonlyArray<[RegExp, string]> = [
  [
    /valid hostname characters/i,
    'droplet names may use only a-z, A-Z, 0-9, "." and "-" and must end with a letter or digit',
  ],
  [
    /droplet limit/i,
    'your account reached its droplet limit: destroy unused droplets (innisfree list, innisfree clean) or ask ' +
      'DigitalOcean support to raise the limit',
  ],
  [
    /ssh key is already in use/i,
    'this public key is already registered in the account under another name; innisfree finds keys by ' +
      'fingerprint, so run the command again',
  ],
  [
    /invalid key identifiers/i,
    'the SSH key was removed from the account while the droplet was being created; run the command again',
  ],
  [/pending event/i, 'the droplet is busy with another action; wait a minute and run the command again'],
  [
    /please try again/i,
    'DigitalOcean could not place the droplet right now; run the command again in a minute or pick another --region',
  ],
  [
    /(region|not available in)/i,
    'check the region and size slugs with doctl compute region list / size list, or pick another --region',
  ],
];

function hintOf(init: DigitalOceanErrorInit): string {
  const status = init.status;
  if (status === undefined) {
    return init.ambiguous
      ? 'the request may have gone through; innisfree looks for the result by tag before trying again, so running ' +
          'the command again is safe'
      : 'check the network connection (and DIGITALOCEAN_API_URL, if set), then run the command again';
  }
  if (status === 401) {
    return (
      'check DIGITALOCEAN_TOKEN / DIGITALOCEAN_ACCESS_TOKEN or the --token-file contents; create a token with ' +
      'read and write scopes in the DigitalOcean control panel (API → Tokens)'
    );
  }
  if (status === 403) return 'the token lacks a scope this needs; use a token with read and write scopes';
  if (status === 429) {
    return (
      "the token hit DigitalOcean's rate limit (250 requests/minute, 5000/hour); wait a few minutes, and check " +
      'that no other tool is using the same token heavily'
    );
  }
  if (status >= 500)
    return (
      'DigitalOcean had a server-side problem; run the command again in a few minutes (see ' +
      'status.digitalocean.com)'
    );
  const message = init.body?.message ?? '';
  for (const [pattern, hint] of HINTS) if (pattern.test(message)) return hint;
  if (status === 404) return 'the resource does not exist (any more) in this DigitalOcean account';
  return 'check the values passed to innisfree against the message above';
}
