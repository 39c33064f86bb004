// The POST /v2/droplets body of a new edge: its name, size, region, boot image, SSH key, tags and user_data.
import { ProviderError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import { EDGE_TAG, type TunnelSpec, edgeNameOf } from '../../spec/tunnel.js';
import type { EnsureEdgeRequest } from '../provider.js';
import type { DigitalOceanClient } from './client.js';
import { dnsTagOf } from './dns.js';
import { checkImageUsable, resolveImage } from './images.js';
import { renderUserData } from './user-data.js';

/** The stock image an edge starts from when nixos-anywhere installs NixOS onto it. */
export const DEBIAN_IMAGE = 'debian-12-x64';

/** The body of a new edge carrying `tag` (the tunnel's, or the replacement's), and whether it asks for IPv6. */
export async function dropletBodyOf(
  api: DigitalOceanClient,
  spec: TunnelSpec,
  identity: EnsureEdgeRequest['identity'],
  fingerprint: string,
  tag: string,
  emit: Emit,
) {
  const image = await bootImageOf(api, spec);
  let ipv6 = spec.ipv6;
  if (spec.ipv6 && image.custom) {
    emit({
      type: 'log',
      level: 'warn',
      message:
        'DigitalOcean gives droplets made from custom images no IPv6; the edge will be IPv4-only (use ' +
        '--bootstrap nixos-anywhere for IPv6)',
    });
    ipv6 = false;
  }
  const body = {
    name: edgeNameOf(spec.name),
    region: spec.region,
    size: spec.size,
    image: image.ref,
    ssh_keys: [fingerprint],
    ipv6,
    monitoring: false,
    tags: [EDGE_TAG, tag, ...(spec.dns ? [dnsTagOf(spec.dns)].filter((t): t is string => t !== undefined) : [])],
    user_data: renderUserData(identity),
  };
  return { body, ipv6 };
}

async function bootImageOf(
  api: DigitalOceanClient,
  spec: TunnelSpec,
): Promise<{ ref: string | number; custom: boolean }> {
  if (spec.bootstrap !== 'image') return { ref: DEBIAN_IMAGE, custom: false };
  if (!spec.image) {
    throw new ProviderError('bootstrap "image" needs an image', {
      hint: 'pass --image ID|NAME, or use --bootstrap nixos-anywhere',
    });
  }
  const image = await resolveImage(api, spec.image);
  checkImageUsable(image, spec.region);
  return { ref: image.id, custom: image.type !== 'base' && image.type !== 'snapshot' && image.type !== 'backup' };
}
