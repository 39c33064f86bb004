// zod schemas for the parts of DigitalOcean's responses innisfree reads. Deliberately lenient: unknown fields pass
// through, values the API leaves out or nulls are optional, and slugs (regions, sizes, distributions) are plain
// strings because the published enums are out of date.
import { z } from 'zod';

const text = z.string().nullish();
const list = <T extends z.ZodType>(item: T) =>
  z
    .array(item)
    .nullish()
    .transform((value) => value ?? []);

export const NetworkV4 = z.looseObject({
  ip_address: z.string(),
  type: z.string(),
  netmask: z.union([z.string(), z.number()]).nullish(),
  gateway: text,
});

export const NetworkV6 = z.looseObject({
  ip_address: z.string(),
  type: z.string(),
  netmask: z.union([z.string(), z.number()]).nullish(),
  gateway: text,
});

export const Region = z.looseObject({ slug: z.string(), name: text, available: z.boolean().nullish() });

export const Size = z.looseObject({
  slug: z.string().nullish(),
  price_monthly: z.number().nullish(),
  price_hourly: z.number().nullish(),
  memory: z.number().nullish(),
  vcpus: z.number().nullish(),
});

export const ImageRef = z.looseObject({
  id: z.number().nullish(),
  name: text,
  slug: text,
  type: text,
  distribution: text,
});

export const Droplet = z.looseObject({
  id: z.number().int(),
  name: z.string(),
  status: z.string(),
  locked: z.boolean().nullish(),
  created_at: z.string(),
  networks: z
    .looseObject({ v4: list(NetworkV4), v6: list(NetworkV6) })
    .nullish()
    .transform((value) => value ?? { v4: [], v6: [] }),
  region: Region.nullish(),
  size: Size.nullish(),
  size_slug: text,
  image: ImageRef.nullish(),
  tags: list(z.string()),
  features: list(z.string()),
});
export type Droplet = z.output<typeof Droplet>;

const ActionLink = z.looseObject({ id: z.number(), rel: text, href: text });

export const Links = z
  .looseObject({
    pages: z.looseObject({ next: text, last: text, first: text, prev: text }).nullish(),
    actions: list(ActionLink),
  })
  .nullish();

export const Action = z.looseObject({
  id: z.number(),
  status: z.string(),
  type: text,
  started_at: text,
  completed_at: text,
  resource_id: z.number().nullish(),
  resource_type: text,
});
export type Action = z.output<typeof Action>;

export const DropletEnvelope = z.looseObject({ droplet: Droplet, links: Links });
export const ActionEnvelope = z.looseObject({ action: Action });

export const SshKey = z.looseObject({
  id: z.number(),
  fingerprint: z.string(),
  public_key: text,
  name: text,
});
export type SshKey = z.output<typeof SshKey>;
export const SshKeyEnvelope = z.looseObject({ ssh_key: SshKey });

export const ReservedIp = z.looseObject({
  ip: z.string(),
  region: Region.nullish(),
  droplet: z.looseObject({ id: z.number(), name: text, tags: list(z.string()) }).nullish(),
  locked: z.boolean().nullish(),
  project_id: text,
});
export type ReservedIp = z.output<typeof ReservedIp>;
export const ReservedIpEnvelope = z.looseObject({ reserved_ip: ReservedIp });

export const DomainRecord = z.looseObject({
  id: z.number(),
  type: z.string(),
  name: z.string(),
  data: z.string(),
  ttl: z.number().nullish(),
});
export type DomainRecord = z.output<typeof DomainRecord>;
export const DomainRecordEnvelope = z.looseObject({ domain_record: DomainRecord });
export const DomainEnvelope = z.looseObject({ domain: z.looseObject({ name: z.string(), ttl: z.number().nullish() }) });

const FirewallTargets = z.looseObject({
  addresses: list(z.string()),
  droplet_ids: list(z.number()),
  tags: list(z.string()),
});
export const FirewallRule = z.looseObject({
  protocol: z.string(),
  ports: z.string().nullish(),
  sources: FirewallTargets.nullish(),
  destinations: FirewallTargets.nullish(),
});
export const Firewall = z.looseObject({
  id: z.string(),
  name: z.string(),
  status: text,
  inbound_rules: list(FirewallRule),
  outbound_rules: list(FirewallRule),
  droplet_ids: list(z.number()),
  tags: list(z.string()),
});
export type Firewall = z.output<typeof Firewall>;
export const FirewallEnvelope = z.looseObject({ firewall: Firewall });

export const Image = z.looseObject({
  id: z.number(),
  name: text,
  type: text,
  distribution: text,
  slug: text,
  public: z.boolean().nullish(),
  regions: list(z.string()),
  created_at: text,
  status: text,
  error_message: text,
  size_gigabytes: z.number().nullish(),
  description: text,
  tags: list(z.string()),
});
export type Image = z.output<typeof Image>;
export const ImageEnvelope = z.looseObject({ image: Image });

export const Account = z.looseObject({
  droplet_limit: z.number().nullish(),
  floating_ip_limit: z.number().nullish(),
  email: text,
  uuid: text,
  status: text,
  status_message: text,
  team: z.looseObject({ name: text, uuid: text }).nullish(),
});
export type Account = z.output<typeof Account>;
export const AccountEnvelope = z.looseObject({ account: Account });

/** One page of a collection: `{<key>: [...], links, meta}`. */
export function pageOf<T extends z.ZodType>(key: string, item: T) {
  return z.looseObject({
    [key]: list(item),
    links: Links,
    meta: z.looseObject({ total: z.number().nullish() }).nullish(),
  });
}

// Reserved IPv6 (/v2/reserved_ipv6): unlike a reserved IPv4 it names its region by `region_slug`, carries no
// `locked` flag, and its actions are read at /v2/actions/{id} (the API has no per-address action path).
export const ReservedIpv6 = z.looseObject({
  ip: z.string(),
  region_slug: text,
  reserved_at: text,
  droplet: z.looseObject({ id: z.number(), name: text, tags: list(z.string()) }).nullish(),
});
export type ReservedIpv6 = z.output<typeof ReservedIpv6>;
export const ReservedIpv6Envelope = z.looseObject({ reserved_ipv6: ReservedIpv6 });
