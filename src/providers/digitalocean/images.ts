// Custom images: innisfree's NixOS edge image imported from a URL, polled until available; looked up by id or by
// name among the account's private images when an edge boots from it.
import { ProviderError, UsageError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import { EDGE_TAG } from '../../spec/tunnel.js';
import type { DigitalOceanClient } from './client.js';
import { DigitalOceanError } from './api-errors.js';
import { listAll } from './pagination.js';
import { Image, ImageEnvelope } from './schemas.js';
import type { Timing } from './timing.js';
import type { Clock } from '../../lib/context.js';

export function listPrivateImages(client: DigitalOceanClient): Promise<Image[]> {
  return listAll(client, '/v2/images', 'images', Image, { private: true });
}

export async function getImage(client: DigitalOceanClient, id: number): Promise<Image | undefined> {
  return (await client.find(`/v2/images/${id}`, ImageEnvelope))?.image;
}

/** An image given as an id or a name; a name must match exactly one available private image (the newest wins). */
export async function resolveImage(client: DigitalOceanClient, ref: string): Promise<Image> {
  if (/^\d+$/.test(ref)) {
    const image = await getImage(client, Number(ref));
    if (!image)
      throw new ProviderError(`image ${ref} does not exist in this DigitalOcean account`, {
        hint: 'list your images with innisfree image list',
      });
    return image;
  }
  const matches = (await listPrivateImages(client)).filter((i) => i.name === ref);
  if (matches.length === 0) {
    throw new ProviderError(`no private image named "${ref}" in this DigitalOcean account`, {
      hint: 'upload one with innisfree image upload --url URL --region REGION, or see innisfree image list',
    });
  }
  const available = matches.filter((i) => i.status === 'available');
  const pool = available.length > 0 ? available : matches;
  return pool.sort((a, b) => (b.created_at ?? '').localeCompare(a.created_at ?? '') || b.id - a.id)[0]!;
}

/** Checks that an image can boot a droplet in `region`. */
export function checkImageUsable(image: Image, region: string): void {
  if (image.status && image.status !== 'available') {
    throw new ProviderError(`image ${image.name ?? image.id} (${image.id}) is ${image.status}, not available`, {
      hint:
        image.status === 'NEW' || image.status === 'pending'
          ? 'wait until its import finishes (innisfree image list)'
          : 'upload the image again',
    });
  }
  if (image.regions.length > 0 && !image.regions.includes(region)) {
    throw new ProviderError(
      `image ${image.name ?? image.id} (${image.id}) is not in region ${region} (it is in ${image.regions.join(', ')})`,
      {
        hint: `use --region ${image.regions[0]}, or upload the image to ${region} too`,
      },
    );
  }
}

export interface UploadRequest {
  name: string;
  url: string;
  region: string;
  description?: string;
}

export async function uploadImage(client: DigitalOceanClient, request: UploadRequest): Promise<Image> {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new UsageError(`--url: "${request.url}" is not a URL`, {
      hint: 'give an http(s) URL DigitalOcean can download the image from',
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`--url: ${url.protocol} URLs cannot be imported`, {
      hint: 'give an http(s) URL (the server must answer HEAD requests)',
    });
  }
  const body = {
    name: request.name,
    url: url.href,
    region: request.region,
    distribution: 'Unknown',
    description: request.description ?? 'innisfree NixOS edge image',
    tags: [EDGE_TAG],
  };
  try {
    return (await client.post('/v2/images', body, ImageEnvelope)).image;
  } catch (error) {
    if (error instanceof DigitalOceanError && error.ambiguous) {
      const found = (await listPrivateImages(client)).find(
        (i) => i.name === request.name && (i.status === 'NEW' || i.status === 'pending'),
      );
      if (found) return found;
    }
    throw error;
  }
}

export async function waitImageAvailable(
  client: DigitalOceanClient,
  id: number,
  options: { timing: Timing; clock: Clock; emit: Emit },
): Promise<Image> {
  const { timing, clock, emit } = options;
  const started = clock.now();
  let last: string | undefined;
  for (;;) {
    const image = await getImage(client, id);
    if (!image) throw new ProviderError(`image ${id} disappeared during its import`, { hint: 'upload it again' });
    if (image.status === 'available') return image;
    if (image.status === 'deleted' || image.status === 'retired') {
      throw new ProviderError(`DigitalOcean could not import image ${id}: ${image.error_message || image.status}`, {
        hint:
          'check that the URL is reachable from the internet, answers HEAD requests, and serves a qcow2/raw image ' +
          '(optionally gzip)',
      });
    }
    if (image.status !== last) {
      last = image.status ?? undefined;
      emit({ type: 'log', level: 'info', message: `image ${id} is ${image.status}` });
    }
    if (clock.now() - started >= timing.imageTimeoutMs) {
      throw new ProviderError(
        `image ${id} was not available after ${Math.round(timing.imageTimeoutMs / 60_000)} minutes`,
        {
          hint: 'its import goes on at DigitalOcean; check later with innisfree image list',
        },
      );
    }
    await client.sleep(timing.imagePollMs);
  }
}

export async function deleteImage(client: DigitalOceanClient, id: number): Promise<boolean> {
  return client.delete(`/v2/images/${id}`, { missingOk: true });
}
