// Resolves a TunnelSpec from its four sources, highest first: command-line flags, INNISFREE_* environment variables,
// a tunnel file (--file), and $XDG_CONFIG_HOME/innisfree/config.json defaults. Each value remembers where it came
// from so that every validation message names the field and its source.
import { isIP } from 'node:net';
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import { camelCase } from '../lib/names.js';
import {
  type PortRange,
  applyProxyProtocol,
  checkPortDestinations,
  parsePortDestination,
  parsePortList,
  parsePortToken,
  parseProtocol,
  validatePortSet,
} from './ports.js';
import { isLoopback } from './primitives.js';
import { DEFAULTS, PROVIDER_TRAITS, TunnelSpec, memoryOfSize, reservedPortsOf } from './tunnel.js';

type Kind = 'string' | 'boolean' | 'integer' | 'list';

interface FieldDef {
  flag: string;
  env: string;
  kind: Kind;
}

/** Every field a tunnel can set, with its flag and environment variable. JSON files use the field name itself. */
export const FIELDS = {
  name: { flag: 'name', env: 'INNISFREE_NAME', kind: 'string' },
  ports: { flag: 'ports', env: 'INNISFREE_PORTS', kind: 'list' },
  proxyProtocol: { flag: 'proxy-protocol', env: 'INNISFREE_PROXY_PROTOCOL', kind: 'list' },
  proxyProtocolVersion: { flag: 'proxy-protocol-version', env: 'INNISFREE_PROXY_PROTOCOL_VERSION', kind: 'integer' },
  destination: { flag: 'destination', env: 'INNISFREE_DESTINATION', kind: 'string' },
  provider: { flag: 'provider', env: 'INNISFREE_PROVIDER', kind: 'string' },
  region: { flag: 'region', env: 'INNISFREE_REGION', kind: 'string' },
  size: { flag: 'size', env: 'INNISFREE_SIZE', kind: 'string' },
  image: { flag: 'image', env: 'INNISFREE_IMAGE', kind: 'string' },
  bootstrap: { flag: 'bootstrap', env: 'INNISFREE_BOOTSTRAP', kind: 'string' },
  forwarding: { flag: 'forwarding', env: 'INNISFREE_FORWARDING', kind: 'string' },
  homeForwarding: { flag: 'home-forwarding', env: 'INNISFREE_HOME_FORWARDING', kind: 'string' },
  masquerade: { flag: 'masquerade', env: 'INNISFREE_MASQUERADE', kind: 'boolean' },
  reservedIp: { flag: 'reserved-ip', env: 'INNISFREE_RESERVED_IP', kind: 'string' },
  reservedIpv6: { flag: 'reserved-ipv6', env: 'INNISFREE_RESERVED_IPV6', kind: 'string' },
  keep: { flag: 'keep', env: 'INNISFREE_KEEP', kind: 'boolean' },
  ipv6: { flag: 'ipv6', env: 'INNISFREE_IPV6', kind: 'boolean' },
  dns: { flag: 'dns', env: 'INNISFREE_DNS', kind: 'string' },
  edgeSshPort: { flag: 'edge-ssh-port', env: 'INNISFREE_EDGE_SSH_PORT', kind: 'integer' },
  wireguardPort: { flag: 'wireguard-port', env: 'INNISFREE_WIREGUARD_PORT', kind: 'integer' },
  addressPool: { flag: 'address-pool', env: 'INNISFREE_ADDRESS_POOL', kind: 'string' },
  ipv6Pool: { flag: 'ipv6-pool', env: 'INNISFREE_IPV6_POOL', kind: 'string' },
  keepalive: { flag: 'keepalive', env: 'INNISFREE_KEEPALIVE', kind: 'integer' },
  mtu: { flag: 'mtu', env: 'INNISFREE_MTU', kind: 'integer' },
  homeInterface: { flag: 'home-interface', env: 'INNISFREE_HOME_INTERFACE', kind: 'string' },
} as const satisfies Record<string, FieldDef>;

export type FieldName = keyof typeof FIELDS;
const FIELD_NAMES = Object.keys(FIELDS) as FieldName[];

export interface Layer {
  /** How messages name this source: "--flags", "environment", "web.json", "config.json". */
  label: string;
  values: Partial<Record<FieldName, unknown>>;
  /** Per field, how to name it in messages ("--region", "INNISFREE_REGION", "web.json: region"). */
  names: Partial<Record<FieldName, string>>;
  /** config.json: defaults for every tunnel, so a field that does not apply to this one is not an error there. */
  defaults?: boolean;
}

export function flagLayer(flags: Record<string, unknown>): Layer {
  const layer: Layer = { label: 'flags', values: {}, names: {} };
  for (const field of FIELD_NAMES) {
    const def = FIELDS[field];
    // Options arrive keyed by their camel-cased name (lib/argv.ts): --ipv6-pool as "ipv6Pool".
    let value = flags[camelCase(def.flag)];
    // --port is accepted as a synonym of --ports (repeatable).
    if (field === 'ports' && flags.port !== undefined) {
      value = [...toArray(value), ...toArray(flags.port)];
    }
    if (value === undefined) continue;
    layer.values[field] = coerceText(field, value, `--${def.flag}`);
    layer.names[field] = `--${def.flag}`;
  }
  return layer;
}

export function envLayer(env: Readonly<Record<string, string | undefined>>): Layer {
  const layer: Layer = { label: 'environment', values: {}, names: {} };
  for (const field of FIELD_NAMES) {
    const def = FIELDS[field];
    const value = env[def.env];
    if (value === undefined) continue;
    // Set but empty is a mistake (a shell variable that expanded to nothing), not "use the default".
    if (value.trim() === '') {
      throw new UsageError(`${def.env} is set but empty`, {
        hint: `give it a value, or unset it (unset ${def.env}) for the default`,
      });
    }
    layer.values[field] = coerceText(field, value, def.env);
    layer.names[field] = def.env;
  }
  return layer;
}

const PortObject = z
  .object({
    public: z.union([z.number(), z.string()]),
    local: z.union([z.number(), z.string()]).optional(),
    protocol: z.string().optional(),
    proxyProtocol: z.boolean().optional(),
    /** This mapping's own destination host; absent: the tunnel's. */
    destination: z.string().optional(),
  })
  .strict();

const FileShape = z
  .object({
    name: z.string(),
    ports: z.union([z.string(), z.array(z.union([z.string(), PortObject]))], {
      message: 'must be a "PUBLIC[:LOCAL][/PROTO][@HOST]" string or a list of them and port objects',
    }),
    proxyProtocol: z.union([z.string(), z.array(z.string())]),
    proxyProtocolVersion: z.number(),
    destination: z.string(),
    provider: z.string(),
    region: z.string(),
    size: z.string(),
    image: z.union([z.string(), z.number()]),
    bootstrap: z.string(),
    forwarding: z.string(),
    homeForwarding: z.string(),
    masquerade: z.boolean(),
    reservedIp: z.string(),
    reservedIpv6: z.string(),
    keep: z.boolean(),
    ipv6: z.boolean(),
    dns: z.string(),
    edgeSshPort: z.number(),
    wireguardPort: z.number(),
    addressPool: z.string(),
    ipv6Pool: z.string(),
    keepalive: z.number(),
    mtu: z.number(),
    homeInterface: z.string(),
    // Settings that are not part of a tunnel but may live in config.json.
    tokenFile: z.string(),
  })
  .partial()
  .strict();

/** A tunnel file or the config.json defaults, already parsed from JSON. */
export function fileLayer(label: string, data: unknown): Layer {
  const parsed = FileShape.safeParse(data);
  if (!parsed.success) {
    throw new UsageError(
      issueLines(parsed.error, (path) => `${label}: ${path || '(top level)'}`),
      {
        hint: 'tunnel files and config.json take the long options of up in camelCase; see innisfree up --help',
      },
    );
  }
  const layer: Layer = { label, values: {}, names: {} };
  for (const field of FIELD_NAMES) {
    const value = parsed.data[field];
    if (value === undefined) continue;
    layer.names[field] = `${label}: ${field}`;
    if (field === 'ports') {
      layer.values.ports = toPortRanges(value as NonNullable<z.infer<typeof FileShape>['ports']>, `${label}: ports`);
    } else if (field === 'image') {
      layer.values.image = String(value);
    } else if (field === 'proxyProtocol') {
      layer.values.proxyProtocol = toArray(value).map(String);
    } else {
      layer.values[field] = value;
    }
  }
  return layer;
}

export function tokenFileOf(data: unknown): string | undefined {
  const parsed = FileShape.safeParse(data);
  return parsed.success ? parsed.data.tokenFile : undefined;
}

/** Merges layers (highest priority first), applies defaults and validates everything. */
export function resolveTunnelSpec(layers: readonly Layer[]): TunnelSpec {
  const pick = (field: FieldName): { value: unknown; name: string } | undefined => {
    for (const layer of layers) {
      if (layer.values[field] !== undefined) return { value: layer.values[field], name: layer.names[field] ?? field };
    }
    return undefined;
  };
  const origin: Partial<Record<string, string>> = {};
  const raw: Record<string, unknown> = {};
  /** Fields set by this tunnel's own sources (flags, environment, tunnel file), not by the config.json defaults. */
  const explicit = new Set<FieldName>();
  for (const field of FIELD_NAMES) {
    const picked = pick(field);
    if (!picked) continue;
    raw[field] = picked.value;
    origin[field] = picked.name;
    if (layers.some((layer) => !layer.defaults && layer.values[field] !== undefined)) explicit.add(field);
  }

  if (raw.ports === undefined) {
    throw new UsageError('ports: no port mappings given', { hint: 'pass --ports, e.g. --ports 443/tcp,80:8080/tcp' });
  }
  let ports = raw.ports as PortRange[];
  if (raw.proxyProtocol !== undefined)
    ports = applyProxyProtocol(ports, raw.proxyProtocol as string[], origin.proxyProtocol);

  const image = raw.image as string | undefined;
  const bootstrap = (raw.bootstrap as string | undefined) ?? (image !== undefined ? 'image' : 'nixos-anywhere');
  const candidate = {
    name: raw.name ?? DEFAULTS.name,
    ports,
    destination: raw.destination ?? DEFAULTS.destination,
    proxyProtocolVersion: raw.proxyProtocolVersion ?? DEFAULTS.proxyProtocolVersion,
    provider: raw.provider ?? DEFAULTS.provider,
    region: raw.region ?? DEFAULTS.region,
    size: raw.size ?? (bootstrap === 'nixos-anywhere' ? DEFAULTS.sizeNixosAnywhere : DEFAULTS.sizeImage),
    ...(image !== undefined ? { image } : {}),
    bootstrap,
    forwarding: raw.forwarding ?? DEFAULTS.forwarding,
    homeForwarding: raw.homeForwarding ?? DEFAULTS.homeForwarding,
    masquerade: raw.masquerade ?? false,
    ...(raw.reservedIp !== undefined ? { reservedIp: raw.reservedIp } : {}),
    ...(raw.reservedIpv6 !== undefined ? { reservedIpv6: raw.reservedIpv6 } : {}),
    keep: raw.keep ?? false,
    // A reserved IPv6 implies IPv6 on the edge; an explicit --ipv6 false with it is refused below.
    ipv6: raw.ipv6 ?? raw.reservedIpv6 !== undefined,
    ...(raw.dns !== undefined ? { dns: raw.dns } : {}),
    edgeSshPort: raw.edgeSshPort ?? DEFAULTS.edgeSshPort,
    wireguardPort: raw.wireguardPort ?? DEFAULTS.wireguardPort,
    addressPool: raw.addressPool ?? DEFAULTS.addressPool,
    ipv6Pool: raw.ipv6Pool ?? DEFAULTS.ipv6Pool,
    keepalive: raw.keepalive ?? DEFAULTS.keepalive,
    mtu: raw.mtu ?? DEFAULTS.mtu,
    ...(raw.homeInterface !== undefined ? { homeInterface: raw.homeInterface } : {}),
  };
  const parsed = TunnelSpec.safeParse(candidate);
  if (!parsed.success) {
    throw new UsageError(
      issueLines(parsed.error, (path) => origin[path.split('.')[0] ?? ''] ?? path),
      {
        hint: 'see innisfree --help for the accepted values',
      },
    );
  }
  const spec = parsed.data;
  validatePortSet(spec.ports, reservedPortsOf(spec));
  checkPerPortDestinations(spec, origin);
  checkCombinations(spec, origin, explicit);
  return spec;
}

function checkCombinations(
  spec: TunnelSpec,
  origin: Partial<Record<string, string>>,
  explicit: ReadonlySet<FieldName>,
): void {
  if (spec.forwarding === 'nftables' && spec.ports.some((p) => p.proxyProtocol)) {
    throw new UsageError(`${origin.proxyProtocol ?? 'proxyProtocol'}: PROXY protocol needs nginx forwarding`, {
      hint: 'kernel DNAT (nftables) cannot add PROXY headers; it keeps the client address in the packets instead',
    });
  }
  checkProxyProtocolVersion(spec, origin, explicit);
  checkHomeForwarding(spec, origin);
  if (PROVIDER_TRAITS[spec.provider].droplets) {
    if (spec.edgeSshPort !== DEFAULTS.edgeSshPort) {
      // A new droplet's sshd listens on 22; moving it needs a deploy that must still be confirmed over SSH, so
      // magic rollback would revert it. Until innisfree moves the port in two steps, the port stays 22 there.
      throw new UsageError(`${origin.edgeSshPort ?? 'edgeSshPort'}: DigitalOcean edges keep SSH on port 22 for now`, {
        hint: 'drop --edge-ssh-port (the local provider accepts it); to forward public 22/tcp, use another public port',
      });
    }
    if (spec.bootstrap === 'image' && spec.image === undefined) {
      throw new UsageError(`${origin.bootstrap ?? 'bootstrap'}: "image" needs an image id or name`, {
        hint: 'pass --image ID|NAME (upload one with innisfree image upload), or use --bootstrap nixos-anywhere',
      });
    }
    if (spec.reservedIpv6 !== undefined) {
      const what = origin.reservedIpv6 ?? 'reservedIpv6';
      if (spec.bootstrap === 'image') {
        throw new UsageError(
          `${what}: DigitalOcean gives droplets made from custom images no IPv6, so a reserved IPv6 needs ` +
            `--bootstrap nixos-anywhere`,
          {
            hint:
              `drop ${origin.image ?? origin.bootstrap ?? '--image'} (nixos-anywhere installs NixOS onto a stock ` +
              `image, which has IPv6), or drop ${what}`,
          },
        );
      }
      if (!spec.ipv6) {
        throw new UsageError(
          `${what}: a reserved IPv6 needs IPv6 on the edge, but ${origin.ipv6 ?? 'ipv6'} turns it off`,
          {
            hint: `drop ${origin.ipv6 ?? 'ipv6'} (a reserved IPv6 implies --ipv6), or drop ${what}`,
          },
        );
      }
    }
    const memory = memoryOfSize(spec.size);
    if (spec.bootstrap === 'nixos-anywhere' && memory !== undefined && memory < 2) {
      throw new UsageError(
        `${origin.size ?? 'size'}: "${spec.size}" has ${memory} GB of RAM; nixos-anywhere needs 2 GB`,
        {
          hint: `use --size ${DEFAULTS.sizeNixosAnywhere} or larger, or --bootstrap image`,
        },
      );
    }
  } else {
    for (const field of ['reservedIp', 'reservedIpv6', 'dns'] as const) {
      if (spec[field] !== undefined) {
        throw new UsageError(`${origin[field] ?? field}: only the digitalocean provider supports this`, {
          hint: `drop ${origin[field] ?? field} when using --provider ${spec.provider}`,
        });
      }
    }
    // Droplet settings mean nothing to an edge in namespaces; silently ignoring them hides a wrong --provider.
    for (const field of ['region', 'size', 'image', 'bootstrap'] as const) {
      if (explicit.has(field)) {
        throw new UsageError(`${origin[field] ?? field}: only the digitalocean provider has droplet settings`, {
          hint: `drop ${origin[field] ?? field} when using --provider ${spec.provider}`,
        });
      }
    }
  }
  if (!spec.ipv6 && explicit.has('ipv6Pool')) {
    throw new UsageError(`${origin.ipv6Pool ?? 'ipv6Pool'}: an IPv6 pool applies only to a tunnel with --ipv6`, {
      hint: `add --ipv6, or drop ${origin.ipv6Pool ?? 'ipv6Pool'}`,
    });
  }
}

/**
 * PROXY protocol v2: nginx's stream module sends v1 only, so the home forwarder turns each v1 header into v2. That
 * needs the forwarder on those ports: not kernel forwarding (DNAT cannot rewrite bytes), not destination "none"
 * (the service would get nginx's v1 header as it is), and no local port shared by ports with and without PROXY.
 */
function checkProxyProtocolVersion(
  spec: TunnelSpec,
  origin: Partial<Record<string, string>>,
  explicit: ReadonlySet<FieldName>,
): void {
  const name = origin.proxyProtocolVersion ?? 'proxyProtocolVersion';
  const proxied = spec.ports.filter((p) => p.proxyProtocol);
  if (proxied.length === 0) {
    if (explicit.has('proxyProtocolVersion')) {
      throw new UsageError(`${name}: no port of the tunnel has PROXY protocol, so a version means nothing`, {
        hint: `add --proxy-protocol PORTS (e.g. --proxy-protocol 443), or drop ${name}`,
      });
    }
    return;
  }
  if (spec.proxyProtocolVersion !== 2) return;
  if (spec.destination === 'none') {
    throw new UsageError(
      `${name}: PROXY v2 comes from the home forwarder, and with the destination "none" there is none (nginx ` +
        `sends v1 only)`,
      {
        hint:
          'give the service a --destination (e.g. 127.0.0.1) so the forwarder can pass v2 on, or use ' +
          '--proxy-protocol-version 1',
      },
    );
  }
  if (spec.homeForwarding === 'kernel') {
    throw new UsageError(
      `${name}: PROXY v2 comes from the home forwarder (nginx sends v1 only), and --home-forwarding kernel ` +
        `passes bytes unchanged`,
      {
        hint: 'drop --home-forwarding kernel (the forwarder is then used), or use --proxy-protocol-version 1',
      },
    );
  }
  const local = new Map<string, PortRange>();
  for (const range of spec.ports) {
    for (let port = range.localStart; port <= range.localEnd; port++) {
      const key = `${range.protocol}/${port}`;
      const other = local.get(key);
      if (other && other.proxyProtocol !== range.proxyProtocol) {
        throw new UsageError(
          `${name}: "${other.source}" and "${range.source}" arrive at local port ${key}, one with PROXY ` +
            `protocol and one without`,
          {
            hint:
              'the forwarder turns v1 into v2 per local port: give them different local ports (PUBLIC:LOCAL), or ' +
              'PROXY protocol on both',
          },
        );
      }
      local.set(key, range);
    }
  }
}

/** Per-port destinations: one destination per local port, and none with a tunnel whose destination is "none". */
function checkPerPortDestinations(spec: TunnelSpec, origin: Partial<Record<string, string>>): void {
  const ports = origin.ports ?? 'ports';
  const own = spec.ports.find((p) => p.destination !== undefined);
  if (own && spec.destination === 'none') {
    throw new UsageError(
      `${ports}: "${own.source}" names its own destination, but the tunnel's destination is "none" (nothing ` +
        `forwards at home)`,
      {
        hint:
          `drop ${origin.destination ?? '--destination'} none (ports without "@HOST" then go to ` +
          `${DEFAULTS.destination}), or drop the "@HOST" part`,
      },
    );
  }
  checkPortDestinations(spec.ports, spec.destination, ports);
}

/** Where each mapping goes at home: its own destination or the tunnel's, with how messages name it. */
function destinationsOf(
  spec: TunnelSpec,
  origin: Partial<Record<string, string>>,
): Array<{ host: string; named: string }> {
  const tunnelWide = { host: spec.destination, named: '' };
  const list = spec.ports.map((p) =>
    p.destination === undefined
      ? tunnelWide
      : { host: p.destination, named: ` (${origin.ports ?? 'ports'}: "${p.source}")` },
  );
  return list.filter((d, i) => list.findIndex((e) => e.host === d.host) === i);
}

/** Home forwarding modes and --masquerade: refuse what cannot work, before anything is made. */
function checkHomeForwarding(spec: TunnelSpec, origin: Partial<Record<string, string>>): void {
  const mode = origin.homeForwarding ?? 'homeForwarding';
  const masquerade = origin.masquerade ?? 'masquerade';
  const destinations = destinationsOf(spec, origin);
  const notIpv4 = destinations.find((d) => isIP(d.host) !== 4);
  if (spec.homeForwarding === 'kernel') {
    if (spec.destination === 'none') {
      throw new UsageError(`${mode}: kernel forwarding needs a destination, but the destination is "none"`, {
        hint:
          'with --destination none the service listens on the tunnel address and nothing forwards; drop one ' +
          'of them',
      });
    }
    if (notIpv4) {
      throw new UsageError(
        `${mode}: kernel forwarding needs an IPv4 destination, not "${notIpv4.host}"${notIpv4.named}`,
        {
          hint:
            'give the destination as an IPv4 address, or use --home-forwarding proxy (the forwarder resolves ' +
            'names and speaks IPv6)',
        },
      );
    }
  }
  if (!spec.masquerade) return;
  if (spec.homeForwarding === 'proxy') {
    throw new UsageError(
      `${masquerade}: only kernel forwarding masquerades; the forwarder (--home-forwarding proxy) always ` +
        `connects from this host`,
      {
        hint: 'drop --masquerade, or use --home-forwarding kernel',
      },
    );
  }
  if (spec.destination === 'none' || notIpv4) {
    const what = notIpv4 ? `"${notIpv4.host}"${notIpv4.named}` : '"none"';
    throw new UsageError(`${masquerade}: masquerading needs kernel forwarding to an IPv4 destination, not ${what}`, {
      hint: 'drop --masquerade, or give each destination host as an IPv4 address',
    });
  }
  if (destinations.every((d) => isLoopback(d.host))) {
    const hosts = destinations.map((d) => d.host).join(', ');
    throw new UsageError(
      `${masquerade}: ` +
        `${destinations.length === 1 ? `the destination ${hosts} is` : `the destinations ${hosts} are`} this host; ` +
        `masquerading applies to another host only`,
      {
        hint: 'drop --masquerade: a service on this host answers through the tunnel without it',
      },
    );
  }
}

/** Turns zod issues into one readable line each, naming the field. */
export function issueLines(error: z.ZodError, nameOf: (path: string) => string): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      const name = nameOf(path);
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
          : issue.message;
      return `${name}: ${message}`;
    })
    .join('\n');
}

function toArray(value: unknown): unknown[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** A sensible value per whole-number field, for the hint of a value that is not one. */
const INTEGER_EXAMPLES: Partial<Record<FieldName, number>> = {
  edgeSshPort: 2222,
  wireguardPort: 51820,
  keepalive: DEFAULTS.keepalive,
  mtu: DEFAULTS.mtu,
};

function coerceText(field: FieldName, value: unknown, name: string): unknown {
  const kind: Kind = FIELDS[field].kind;
  const last = (v: unknown): unknown => (Array.isArray(v) ? v[v.length - 1] : v);
  switch (kind) {
    case 'list': {
      const items = toArray(value).map(String);
      return field === 'ports' ? parsePortList(items) : items;
    }
    case 'boolean': {
      const v = last(value);
      if (typeof v === 'boolean') return v;
      const text = String(v).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(text)) return true;
      if (['0', 'false', 'no', 'off'].includes(text)) return false;
      throw new UsageError(`${name}: "${String(v)}" is not a boolean`, { hint: 'use true or false' });
    }
    case 'integer': {
      const v = last(value);
      const number = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : Number.NaN;
      if (!Number.isInteger(number)) {
        throw new UsageError(`${name}: "${String(v)}" is not a whole number`, {
          hint: `pass a whole number, e.g. ${name}${name.startsWith('--') ? ' ' : '='}${INTEGER_EXAMPLES[field] ?? 1}`,
        });
      }
      return number;
    }
    case 'string': {
      const v = last(value);
      if (v === true || v === '') throw new UsageError(`${name}: needs a value`, { hint: `write ${name} VALUE` });
      return String(v);
    }
  }
}

function toPortRanges(value: string | Array<string | z.infer<typeof PortObject>>, name: string): PortRange[] {
  const entries = toArray(value) as Array<string | z.infer<typeof PortObject>>;
  return entries.flatMap((entry) => {
    if (typeof entry === 'string') return parsePortList([entry]);
    const local = entry.local === undefined ? '' : `:${entry.local}`;
    const protocol =
      entry.protocol === undefined ? 'tcp' : parseProtocol(entry.protocol, `${name}: ${JSON.stringify(entry)}`);
    const range = parsePortToken(`${entry.public}${local}/${protocol}`);
    const destination =
      entry.destination === undefined
        ? undefined
        : parsePortDestination(entry.destination, `${range.source}@${entry.destination}`);
    return [
      {
        ...range,
        proxyProtocol: entry.proxyProtocol ?? false,
        ...(destination !== undefined ? { destination, source: `${range.source}@${entry.destination}` } : {}),
      },
    ];
  });
}
