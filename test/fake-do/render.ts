// The fake's objects in DigitalOcean's JSON shapes.
import {
  type FakeAction,
  type FakeDroplet,
  type FakeFirewall,
  type FakeImage,
  type FakeRecord,
  type FakeReservedIp,
  type FakeReservedIpv6,
  type FakeState,
  REGIONS,
  SIZES,
} from './state.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function regionJson(slug: string) {
  return {
    name:
      { nyc1: 'New York 1', nyc3: 'New York 3', ams3: 'Amsterdam 3', fra1: 'Frankfurt 1' }[slug] ?? slug.toUpperCase(),
    slug,
    features: ['backups', 'ipv6', 'metadata', 'install_agent', 'storage', 'image_transfer'],
    available: true,
    sizes: SIZES.map((s) => s.slug),
  };
}

export function sizeJson(slug: string) {
  const size = SIZES.find((s) => s.slug === slug) ?? SIZES[1]!;
  return {
    ...size,
    regions: [...REGIONS],
    available: true,
    description: 'Basic',
    disk_info: [{ type: 'local', size: { amount: size.disk, unit: 'gib' } }],
  };
}

export function imageJson(image: FakeImage) {
  return {
    id: image.id,
    name: image.name,
    type: image.type,
    distribution: image.distribution,
    slug: image.slug,
    public: image.public,
    regions: image.regions,
    created_at: iso(image.createdAt),
    min_disk_size: image.status === 'available' ? 15 : null,
    size_gigabytes: image.status === 'available' ? 2.36 : null,
    description: image.description,
    tags: image.tags,
    status: image.status,
    error_message: image.errorMessage,
  };
}

export function dropletJson(droplet: FakeDroplet) {
  const size = sizeJson(droplet.size);
  const active = droplet.status !== 'new';
  const features = ['droplet_agent', 'private_networking', ...(droplet.ipv6Requested ? ['ipv6'] : [])];
  return {
    id: droplet.id,
    name: droplet.name,
    memory: size.memory,
    vcpus: size.vcpus,
    disk: size.disk,
    disk_info: size.disk_info,
    locked: droplet.locked,
    status: droplet.status,
    kernel: null,
    created_at: iso(droplet.createdAt),
    features,
    backup_ids: [],
    next_backup_window: null,
    snapshot_ids: [],
    image: imageJson(droplet.image),
    volume_ids: [],
    size,
    size_slug: droplet.size,
    networks: {
      v4: active
        ? [
            { ip_address: droplet.privateIpv4, netmask: '255.255.240.0', gateway: 'nil', type: 'private' },
            {
              ip_address: droplet.publicIpv4,
              netmask: '255.255.255.0',
              gateway: droplet.publicIpv4.replace(/\.\d+$/, '.1'),
              type: 'public',
            },
          ]
        : [],
      v6:
        active && droplet.publicIpv6
          ? [{ ip_address: droplet.publicIpv6, netmask: 64, gateway: '2001:db8:10::1', type: 'public' }]
          : [],
    },
    region: regionJson(droplet.region),
    tags: droplet.tags,
    vpc_uuid: '760e09ef-dc84-11e8-981e-3cfdfeaae000',
  };
}

export function actionJson(action: FakeAction) {
  return {
    id: action.id,
    status: action.status,
    type: action.type,
    started_at: iso(action.startedAt),
    completed_at: action.completedAt === null ? null : iso(action.completedAt),
    resource_id: action.resourceId,
    resource_type: action.resourceType,
    region: regionJson(action.region),
    region_slug: action.region,
  };
}

export function reservedIpJson(state: FakeState, reserved: FakeReservedIp) {
  const droplet = reserved.dropletId === null ? undefined : state.droplets.get(reserved.dropletId);
  return {
    ip: reserved.ip,
    region: regionJson(reserved.region),
    droplet: droplet ? dropletJson(droplet) : null,
    locked: reserved.locked,
    project_id: '746c6152-2fa2-11ed-92d3-27aaa54e4988',
  };
}

export function reservedIpv6Json(state: FakeState, reserved: FakeReservedIpv6) {
  const droplet = reserved.dropletId === null ? undefined : state.droplets.get(reserved.dropletId);
  return {
    ip: reserved.ip,
    region_slug: reserved.region,
    reserved_at: iso(reserved.reservedAt),
    droplet: droplet ? dropletJson(droplet) : null,
  };
}

export function recordJson(record: FakeRecord) {
  return { ...record };
}

export function firewallJson(firewall: FakeFirewall) {
  return {
    id: firewall.id,
    name: firewall.name,
    status: 'succeeded',
    created_at: iso(firewall.createdAt),
    pending_changes: [],
    inbound_rules: firewall.inbound_rules,
    outbound_rules: firewall.outbound_rules,
    droplet_ids: firewall.droplet_ids,
    tags: firewall.tags,
  };
}
