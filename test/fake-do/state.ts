// The fake DigitalOcean account: droplets that go new → active after a number of polls (or some time), their
// actions, tags, SSH keys, reserved IPs and their actions, custom images, domains and records, firewalls and the
// account itself. Objects are rendered in the API's own shapes (checked against the OpenAPI response schemas by
// a test). Errors are the real status codes and messages DigitalOcean sends.
import { createHash, randomUUID } from 'node:crypto';

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly id: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (): ApiFailure =>
  new ApiFailure(404, 'not_found', 'The resource you requested could not be found.');
export const unprocessable = (message: string): ApiFailure => new ApiFailure(422, 'unprocessable_entity', message);

export interface Activation {
  /** Single-droplet GETs before a new droplet turns active (default 2). */
  afterPolls?: number;
  /** And at least this much time (by the fake's clock) after the create (default 0). */
  afterMs?: number;
  /** The first N single-droplet GETs after the create answer 404 (default 0). */
  notFoundPolls?: number;
  /** The create action stays in-progress for N more reads of the droplet's actions after it is active (default 0). */
  pendingActionPolls?: number;
}

export interface DropletAddresses {
  ipv4?: string;
  ipv6?: string;
}

export interface FakeDroplet {
  id: number;
  name: string;
  status: 'new' | 'active' | 'off' | 'archive';
  locked: boolean;
  region: string;
  size: string;
  image: FakeImage;
  ipv6Requested: boolean;
  tags: string[];
  sshKeys: Array<string | number>;
  userData: string | undefined;
  createdAt: number;
  polls: number;
  notFoundLeft: number;
  publicIpv4: string;
  privateIpv4: string;
  publicIpv6: string | undefined;
  activation: Required<Activation>;
  createActionId: number;
}

export interface FakeAction {
  id: number;
  status: 'in-progress' | 'completed' | 'errored';
  type: string;
  startedAt: number;
  completedAt: number | null;
  resourceId: number;
  resourceType: 'droplet' | 'reserved_ip' | 'reserved_ipv6';
  region: string;
  /** Reads left before it completes, for actions that complete by being polled. */
  pollsLeft: number;
  onComplete?: () => void;
}

export interface FakeImage {
  id: number;
  name: string;
  slug: string | null;
  type: 'base' | 'custom' | 'snapshot';
  distribution: string;
  public: boolean;
  regions: string[];
  createdAt: number;
  status: 'NEW' | 'available' | 'pending' | 'deleted';
  errorMessage: string;
  description: string;
  tags: string[];
  pollsLeft: number;
  failImport: boolean;
}

export interface FakeSshKey {
  id: number;
  fingerprint: string;
  public_key: string;
  name: string;
}

export interface FakeReservedIp {
  ip: string;
  region: string;
  dropletId: number | null;
  locked: boolean;
}

/** A reserved IPv6: its region is a slug; the droplet it points at must have IPv6 and live in that region. */
export interface FakeReservedIpv6 {
  ip: string;
  region: string;
  dropletId: number | null;
  reservedAt: number;
  /** An assign or unassign is under way (the API shows no flag; a delete then fails with 422). */
  busy: boolean;
}

export interface FakeRecord {
  id: number;
  type: string;
  name: string;
  data: string;
  ttl: number;
  priority: number | null;
  port: number | null;
  weight: number | null;
  flags: number | null;
  tag: string | null;
}

export interface FakeFirewall {
  id: string;
  name: string;
  createdAt: number;
  inbound_rules: unknown[];
  outbound_rules: unknown[];
  droplet_ids: number[];
  tags: string[];
}

export const REGIONS = ['nyc1', 'nyc3', 'ams3', 'fra1', 'lon1', 'sfo3', 'sgp1', 'tor1', 'blr1', 'syd1', 'atl1'];

export const SIZES = [
  {
    slug: 's-1vcpu-512mb-10gb',
    memory: 512,
    vcpus: 1,
    disk: 10,
    transfer: 0.5,
    price_monthly: 4,
    price_hourly: 0.00595,
  },
  { slug: 's-1vcpu-1gb', memory: 1024, vcpus: 1, disk: 25, transfer: 1, price_monthly: 6, price_hourly: 0.00893 },
  { slug: 's-1vcpu-2gb', memory: 2048, vcpus: 1, disk: 50, transfer: 2, price_monthly: 12, price_hourly: 0.01786 },
  { slug: 's-2vcpu-4gb', memory: 4096, vcpus: 2, disk: 80, transfer: 4, price_monthly: 24, price_hourly: 0.03571 },
];

export const DROPLET_NAME = /^[a-zA-Z0-9]?[a-z0-9A-Z.-]*[a-z0-9A-Z]$/;
const TAG_NAME = /^[a-zA-Z0-9_\-:]+$/;

export function md5Of(publicKey: string): string | undefined {
  const blob = publicKey.trim().split(/\s+/)[1];
  if (!blob) return undefined;
  return (createHash('md5').update(Buffer.from(blob, 'base64')).digest('hex').match(/../g) ?? []).join(':');
}

export interface StateOptions {
  now: () => number;
  dropletLimit: number;
  activation: Activation;
  /** Called when a droplet is created; may choose its public addresses. */
  onDropletCreated?: (droplet: FakeDroplet) => DropletAddresses | void | Promise<DropletAddresses | void>;
  onDropletDeleted?: (droplet: FakeDroplet) => void | Promise<void>;
}

export class FakeState {
  readonly droplets = new Map<number, FakeDroplet>();
  readonly actions = new Map<number, FakeAction>();
  readonly images = new Map<number, FakeImage>();
  readonly sshKeys = new Map<number, FakeSshKey>();
  readonly reservedIps = new Map<string, FakeReservedIp>();
  readonly reservedIpv6s = new Map<string, FakeReservedIpv6>();
  readonly domains = new Map<string, { name: string; ttl: number; records: Map<number, FakeRecord> }>();
  readonly firewalls = new Map<string, FakeFirewall>();
  readonly tags = new Set<string>();
  readonly account = {
    droplet_limit: 25,
    floating_ip_limit: 3,
    email: 'edge-owner@example.com',
    name: 'Edge Owner',
    uuid: randomUUID(),
    email_verified: true,
    status: 'active',
    status_message: '',
    team: { uuid: randomUUID(), name: 'My Team' },
  };
  /** Custom-image imports complete after this many GETs of the image. */
  imagePolls = 2;
  /** Reserved-IP actions complete after this many reads of the action. */
  reservedIpActionPolls = 1;
  #nextId = 3_164_000;
  #nextAddress = 10;
  #nextIpv6 = 0x100;
  readonly #options: StateOptions;

  constructor(options: StateOptions) {
    this.#options = options;
    this.account.droplet_limit = options.dropletLimit;
    this.images.set(106_569_146, {
      id: 106_569_146,
      name: '12 x64',
      slug: 'debian-12-x64',
      type: 'base',
      distribution: 'Debian',
      public: true,
      regions: [...REGIONS],
      createdAt: Date.parse('2024-06-01T00:00:00Z'),
      status: 'available',
      errorMessage: '',
      description: 'Debian 12 x64',
      tags: [],
      pollsLeft: 0,
      failImport: false,
    });
  }

  now(): number {
    return this.#options.now();
  }

  nextId(): number {
    return this.#nextId++;
  }

  // ---- droplets

  async createDroplet(body: Record<string, unknown>): Promise<FakeDroplet> {
    const name = String(body.name ?? '');
    if (!DROPLET_NAME.test(name) || name.length > 255) {
      throw unprocessable('Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)');
    }
    if (this.droplets.size + 1 > this.account.droplet_limit) {
      throw unprocessable('creating this/these droplet(s) will exceed your droplet limit');
    }
    const region = String(body.region ?? 'nyc3');
    if (!REGIONS.includes(region)) throw unprocessable('Region is not available');
    const size = String(body.size ?? '');
    if (!SIZES.some((s) => s.slug === size)) throw unprocessable('You specified an invalid size for Droplet creation.');
    const image = this.findImage(body.image as string | number);
    if (!image || image.status !== 'available')
      throw unprocessable('You specified an invalid image for Droplet create.');
    if (!image.regions.includes(region)) throw unprocessable(`${image.name} is not available in ${region}.`);
    const keys = (body.ssh_keys as Array<string | number> | undefined) ?? [];
    const invalid = keys.filter((k) => !this.findSshKey(String(k)));
    if (invalid.length > 0)
      throw unprocessable(`${invalid.join(', ')} are invalid key identifiers for Droplet creation.`);
    if (image.type === 'custom' && keys.length === 0)
      throw unprocessable('You must add an SSH key when creating a Droplet from a custom image.');
    const userData = body.user_data as string | undefined;
    if (userData !== undefined && Buffer.byteLength(userData) > 64 * 1024)
      throw unprocessable('user_data must not exceed 64 KiB.');
    const tags = ((body.tags as string[] | null | undefined) ?? []).slice();
    for (const tag of tags) {
      if (!TAG_NAME.test(tag)) throw unprocessable(`tag ${tag} is invalid`);
      this.tags.add(this.canonicalTag(tag));
    }
    const n = this.#nextAddress++;
    const id = this.nextId();
    const activation = this.#options.activation;
    const droplet: FakeDroplet = {
      id,
      name,
      status: 'new',
      locked: false,
      region,
      size,
      image,
      ipv6Requested: body.ipv6 === true && image.type !== 'custom',
      tags: tags.map((t) => this.canonicalTag(t)),
      sshKeys: keys,
      userData,
      createdAt: this.now(),
      polls: 0,
      notFoundLeft: activation.notFoundPolls ?? 0,
      publicIpv4: `203.0.113.${n}`,
      privateIpv4: `10.116.0.${n}`,
      publicIpv6: undefined,
      activation: {
        afterPolls: activation.afterPolls ?? 2,
        afterMs: activation.afterMs ?? 0,
        notFoundPolls: activation.notFoundPolls ?? 0,
        pendingActionPolls: activation.pendingActionPolls ?? 0,
      },
      createActionId: 0,
    };
    if (droplet.ipv6Requested) droplet.publicIpv6 = `2001:db8:10::${n.toString(16)}`;
    const chosen = await this.#options.onDropletCreated?.(droplet);
    if (chosen?.ipv4) droplet.publicIpv4 = chosen.ipv4;
    if (chosen?.ipv6 && droplet.ipv6Requested) droplet.publicIpv6 = chosen.ipv6;
    const action = this.addAction('create', id, 'droplet', region, Number.POSITIVE_INFINITY);
    droplet.createActionId = action.id;
    this.droplets.set(id, droplet);
    return droplet;
  }

  /** Moves a new droplet along: active once polled enough and old enough. */
  advance(droplet: FakeDroplet): void {
    if (droplet.status !== 'new') return;
    const { afterPolls, afterMs, pendingActionPolls } = droplet.activation;
    if (droplet.polls >= afterPolls && this.now() - droplet.createdAt >= afterMs) {
      droplet.status = 'active';
      const action = this.actions.get(droplet.createActionId);
      if (action && action.status === 'in-progress') {
        action.pollsLeft = pendingActionPolls;
        if (pendingActionPolls === 0) this.completeAction(action);
      }
    }
  }

  /** A single-droplet GET: counts as a poll; may 404 during the not-found window. */
  pollDroplet(id: number): FakeDroplet {
    const droplet = this.droplets.get(id);
    if (!droplet) throw notFound();
    droplet.polls++;
    if (droplet.notFoundLeft > 0) {
      droplet.notFoundLeft--;
      throw notFound();
    }
    this.advance(droplet);
    return droplet;
  }

  async deleteDroplet(id: number): Promise<void> {
    const droplet = this.droplets.get(id);
    if (!droplet) throw notFound();
    this.droplets.delete(id);
    for (const reserved of this.reservedIps.values()) if (reserved.dropletId === id) reserved.dropletId = null;
    for (const reserved of this.reservedIpv6s.values()) if (reserved.dropletId === id) reserved.dropletId = null;
    for (const firewall of this.firewalls.values()) firewall.droplet_ids = firewall.droplet_ids.filter((d) => d !== id);
    await this.#options.onDropletDeleted?.(droplet);
  }

  hasPendingAction(dropletId: number): boolean {
    return [...this.actions.values()].some(
      (a) => a.resourceType === 'droplet' && a.resourceId === dropletId && a.status === 'in-progress',
    );
  }

  /** Reading a droplet's actions counts down the create action's extra pending reads. */
  readDropletActions(dropletId: number): FakeAction[] {
    const droplet = this.droplets.get(dropletId);
    if (!droplet) throw notFound();
    this.advance(droplet);
    const actions = [...this.actions.values()].filter(
      (a) => a.resourceType === 'droplet' && a.resourceId === dropletId,
    );
    const result = actions.map((a) => ({ ...a }));
    for (const action of actions) {
      if (action.status === 'in-progress' && droplet.status === 'active' && Number.isFinite(action.pollsLeft)) {
        if (--action.pollsLeft <= 0) this.completeAction(action);
      }
    }
    return result;
  }

  // ---- actions

  addAction(
    type: string,
    resourceId: number,
    resourceType: FakeAction['resourceType'],
    region: string,
    polls: number,
  ): FakeAction {
    const action: FakeAction = {
      id: this.nextId(),
      status: 'in-progress',
      type,
      startedAt: this.now(),
      completedAt: null,
      resourceId,
      resourceType,
      region,
      pollsLeft: polls,
    };
    this.actions.set(action.id, action);
    return action;
  }

  completeAction(action: FakeAction): void {
    if (action.status !== 'in-progress') return;
    action.status = 'completed';
    action.completedAt = this.now();
    action.onComplete?.();
  }

  /** Reading an action counts down its polls. */
  readAction(id: number): FakeAction {
    const action = this.actions.get(id);
    if (!action) throw notFound();
    if (action.resourceType === 'droplet') {
      const droplet = this.droplets.get(action.resourceId);
      if (droplet) this.advance(droplet);
    }
    const snapshot = { ...action };
    if (action.status === 'in-progress' && Number.isFinite(action.pollsLeft) && --action.pollsLeft <= 0)
      this.completeAction(action);
    return snapshot;
  }

  // ---- SSH keys

  findSshKey(idOrFingerprint: string): FakeSshKey | undefined {
    if (/^\d+$/.test(idOrFingerprint)) return this.sshKeys.get(Number(idOrFingerprint));
    return [...this.sshKeys.values()].find((k) => k.fingerprint === idOrFingerprint);
  }

  addSshKey(name: string, publicKey: string): FakeSshKey {
    const fingerprint = md5Of(publicKey);
    if (!fingerprint || !/^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+) [A-Za-z0-9+/]+=*/.test(publicKey.trim())) {
      throw unprocessable(
        'Key invalid type, we support id_rsa (RSA), id_dsa (DSA), id_ecdsa (ECDSA) and id_ed25519 (ED25519)',
      );
    }
    if (this.findSshKey(fingerprint)) throw unprocessable('SSH Key is already in use on your account');
    const key = { id: this.nextId(), fingerprint, public_key: publicKey.trim(), name };
    this.sshKeys.set(key.id, key);
    return key;
  }

  // ---- reserved IPs

  addReservedIp(ip: string, region: string, dropletId: number | null = null): FakeReservedIp {
    const reserved = { ip, region, dropletId, locked: false };
    this.reservedIps.set(ip, reserved);
    return reserved;
  }

  reservedIpAction(ip: string, body: { type?: string; droplet_id?: number }): FakeAction {
    const reserved = this.reservedIps.get(ip);
    if (!reserved) throw notFound();
    if (body.type === 'assign') {
      const droplet = this.droplets.get(Number(body.droplet_id));
      if (!droplet) throw unprocessable('Droplet not found.');
      if (droplet.region !== reserved.region)
        throw unprocessable('Reserved IP and Droplet must be in the same region.');
      if (this.hasPendingAction(droplet.id)) throw unprocessable('Droplet already has a pending event.');
      const action = this.addAction(
        'assign_ip',
        ipToInt(ip),
        'reserved_ip',
        reserved.region,
        this.reservedIpActionPolls,
      );
      reserved.locked = true;
      action.onComplete = () => {
        reserved.locked = false;
        reserved.dropletId = droplet.id;
      };
      if (this.reservedIpActionPolls <= 0) this.completeAction(action);
      return action;
    }
    if (body.type === 'unassign') {
      const action = this.addAction(
        'unassign_ip',
        ipToInt(ip),
        'reserved_ip',
        reserved.region,
        this.reservedIpActionPolls,
      );
      reserved.locked = true;
      action.onComplete = () => {
        reserved.locked = false;
        reserved.dropletId = null;
      };
      if (this.reservedIpActionPolls <= 0) this.completeAction(action);
      return action;
    }
    throw unprocessable('Invalid action type.');
  }

  // ---- reserved IPv6

  addReservedIpv6(region: string, ip?: string, dropletId: number | null = null): FakeReservedIpv6 {
    if (!REGIONS.includes(region)) throw unprocessable('Region is not available');
    const address = ip ?? `2001:db8:f00d::${(this.#nextIpv6++).toString(16)}`;
    const reserved: FakeReservedIpv6 = { ip: address, region, dropletId, reservedAt: this.now(), busy: false };
    this.reservedIpv6s.set(address, reserved);
    return reserved;
  }

  reservedIpv6Action(ip: string, body: { type?: string; droplet_id?: number }): FakeAction {
    const reserved = this.reservedIpv6s.get(ip);
    if (!reserved) throw notFound();
    if (reserved.busy) throw unprocessable('Reserved IPv6 has a pending action.');
    let target: number | null = null;
    if (body.type === 'assign') {
      const droplet = this.droplets.get(Number(body.droplet_id));
      if (!droplet) throw unprocessable('Droplet not found.');
      if (droplet.region !== reserved.region)
        throw unprocessable('Reserved IPv6 and Droplet must be in the same region.');
      if (!droplet.publicIpv6) throw unprocessable('IPv6 is not enabled on the Droplet.');
      if (this.hasPendingAction(droplet.id)) throw unprocessable('Droplet already has a pending event.');
      target = droplet.id;
    } else if (body.type !== 'unassign') {
      throw unprocessable('Invalid action type.');
    }
    const action = this.addAction(
      body.type === 'assign' ? 'assign_ip' : 'unassign_ip',
      ipv6ToId(ip),
      'reserved_ipv6',
      reserved.region,
      this.reservedIpActionPolls,
    );
    reserved.busy = true;
    action.onComplete = () => {
      reserved.busy = false;
      reserved.dropletId = target;
    };
    if (this.reservedIpActionPolls <= 0) this.completeAction(action);
    return action;
  }

  // ---- images

  findImage(ref: string | number | undefined): FakeImage | undefined {
    if (ref === undefined) return undefined;
    if (typeof ref === 'number' || /^\d+$/.test(ref)) return this.images.get(Number(ref));
    return [...this.images.values()].find((i) => i.slug === ref);
  }

  addCustomImage(fields: {
    name: string;
    region: string;
    url?: string;
    description?: string;
    tags?: string[];
    status?: FakeImage['status'];
  }): FakeImage {
    const image: FakeImage = {
      id: this.nextId(),
      name: fields.name,
      slug: null,
      type: 'custom',
      distribution: 'Unknown',
      public: false,
      regions: fields.status === 'available' ? [fields.region] : [],
      createdAt: this.now(),
      status: fields.status ?? 'NEW',
      errorMessage: '',
      description: fields.description ?? '',
      tags: fields.tags ?? [],
      pollsLeft: this.imagePolls,
      failImport: false,
    };
    (image as FakeImage & { importRegion: string }).importRegion = fields.region;
    this.images.set(image.id, image);
    return image;
  }

  /** A GET of an image moves its import along. */
  pollImage(image: FakeImage): void {
    if (image.status !== 'NEW' && image.status !== 'pending') return;
    if (--image.pollsLeft > 0) {
      image.status = 'pending';
      return;
    }
    if (image.failImport) {
      image.status = 'deleted';
      image.errorMessage = 'Failed to import: the URL could not be downloaded (HEAD request failed).';
    } else {
      image.status = 'available';
      image.regions = [(image as FakeImage & { importRegion?: string }).importRegion ?? 'nyc3'];
    }
  }

  // ---- domains

  addDomain(name: string): void {
    this.domains.set(name, { name, ttl: 1800, records: new Map() });
  }

  domainRecords(domain: string): FakeRecord[] {
    return [...(this.domains.get(domain)?.records.values() ?? [])];
  }

  // ---- tags

  /** Tags keep the capitalization they were first created with. */
  canonicalTag(tag: string): string {
    for (const existing of this.tags) if (existing.toLowerCase() === tag.toLowerCase()) return existing;
    return tag;
  }

  /** Everything that still carries a tag (droplets, images, firewalls). */
  tagged(tag: string): string[] {
    const lower = tag.toLowerCase();
    const has = (tags: string[]) => tags.some((t) => t.toLowerCase() === lower);
    return [
      ...[...this.droplets.values()].filter((d) => has(d.tags)).map((d) => `droplet ${d.id}`),
      ...[...this.images.values()].filter((i) => has(i.tags)).map((i) => `image ${i.id}`),
      ...[...this.firewalls.values()].filter((f) => has(f.tags)).map((f) => `firewall ${f.name}`),
    ];
  }

  nextAddressIndex(): number {
    return this.#nextAddress;
  }
}

/** The integer resource_id an IPv6 action names (the API documents an integer; only its stability matters). */
export function ipv6ToId(ip: string): number {
  let id = 0;
  for (const char of ip) id = (id * 31 + char.charCodeAt(0)) % 2_147_483_647;
  return id;
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}
