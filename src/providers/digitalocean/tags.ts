// Tags on existing droplets (a tag added after create, e.g. the DNS name of a later --dns) and tag removal.
import { edgeTagOf } from '../../spec/tunnel.js';
import type { DigitalOceanClient } from './client.js';
import { DigitalOceanError } from './api-errors.js';

export async function tagDroplet(client: DigitalOceanClient, tag: string, dropletId: number): Promise<void> {
  try {
    await client.request('POST', '/v2/tags', { body: { name: tag }, idempotent: true });
  } catch (error) {
    // An existing tag is fine (DigitalOcean's answer for that case is not documented; a 4xx other than auth is taken as
    // it).
    if (
      !(error instanceof DigitalOceanError) ||
      error.status === undefined ||
      error.status === 401 ||
      error.status === 403 ||
      error.status >= 500
    ) {
      throw error;
    }
  }
  await client.request('POST', `/v2/tags/${tag}/resources`, {
    body: { resources: [{ resource_id: String(dropletId), resource_type: 'droplet' }] },
    idempotent: true,
  });
}

export async function untagDroplet(client: DigitalOceanClient, tag: string, dropletId: number): Promise<void> {
  try {
    await client.request('DELETE', `/v2/tags/${tag}/resources`, {
      body: { resources: [{ resource_id: String(dropletId), resource_type: 'droplet' }] },
    });
  } catch (error) {
    if (!(error instanceof DigitalOceanError && error.notFound)) throw error;
  }
}

export async function deleteTag(client: DigitalOceanClient, tag: string): Promise<void> {
  await client.delete(`/v2/tags/${tag}`, { missingOk: true });
}

/** The tag of a droplet being built to replace a tunnel's edge: not yet the tunnel's, found again by it. */
export function replacementTagOf(tunnel: string): string {
  return `innisfree-replacement:${tunnel}`;
}

/** Whether a droplet is the tunnel's: its edge, or the edge's replacement (up --replace-edge; an undo moves back). */
export function isTunnelDroplet(droplet: { tags: readonly string[] }, tunnel: string): boolean {
  return droplet.tags.includes(edgeTagOf(tunnel)) || droplet.tags.includes(replacementTagOf(tunnel));
}
