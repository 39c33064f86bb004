// innisfree image upload|list|delete: the custom NixOS image edges boot from with --bootstrap image. Upload imports
// it into DigitalOcean from a URL and (unless --no-wait) polls until it is available.
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { step } from '../lib/events.js';
import { formatAge, renderTable } from '../lib/table.js';
import { tokenFileFrom } from '../spec/load.js';

export interface ImageOptions {
  /** upload, list or delete. */
  action: string | undefined;
  /** delete: the image id or name. */
  target: string | undefined;
  flags: Record<string, unknown>;
  json: boolean;
}

type Ctx = Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>;

export async function imageCommand(ctx: Ctx, options: ImageOptions): Promise<CommandOutcome> {
  const { action, target } = options;
  const { createDigitalOceanClient } = await import('../providers/digitalocean/index.js');
  const images = await import('../providers/digitalocean/images.js');
  const { DEFAULT_TIMING } = await import('../providers/digitalocean/timing.js');
  const { flags } = options;
  const text = (name: string): string | undefined =>
    typeof flags[name] === 'string' && flags[name] !== '' ? (flags[name] as string) : undefined;
  switch (action) {
    case 'upload': {
      const url = text('url');
      const region = text('region');
      if (!url || !region) {
        throw new UsageError('image upload needs --url and --region', {
          hint: 'e.g. innisfree image upload --url https://example.com/nixos-edge.qcow2.gz --region nyc3',
        });
      }
      const name = text('name') ?? `innisfree-edge-${new Date(ctx.clock.now()).toISOString().slice(0, 10)}`;
      const client = await createDigitalOceanClient(ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) });
      let image = await step(ctx.emit, 'image.upload', `Import image ${name} into ${region}`, () =>
        images.uploadImage(client, {
          name,
          url,
          region,
          ...(text('description') ? { description: text('description')! } : {}),
        }),
      );
      if (flags.wait !== false) {
        image = await step(ctx.emit, 'image.wait', `Wait for image ${image.id} to be available`, () =>
          images.waitImageAvailable(client, image.id, { timing: DEFAULT_TIMING, clock: ctx.clock, emit: ctx.emit }),
        );
      }
      if (options.json) return { output: `${JSON.stringify(image, null, 2)}\n` };
      return {
        output:
          image.status === 'available'
            ? `Image ${image.id} (${image.name}) is available in ${image.regions.join(', ')}. Use it with ` +
              `--bootstrap image --image ${image.id}.\n`
            : `Image ${image.id} (${image.name}) is importing (${image.status}); see innisfree image list.\n`,
      };
    }
    case 'list': {
      const client = await createDigitalOceanClient(ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) });
      const custom = (await images.listPrivateImages(client)).filter((i) => i.type === 'custom');
      if (options.json) return { output: `${JSON.stringify(custom, null, 2)}\n` };
      if (custom.length === 0)
        return { output: 'No custom images. Upload one with innisfree image upload --url URL --region REGION.\n' };
      const now = ctx.clock.now();
      return {
        output: renderTable(
          ['ID', 'NAME', 'STATUS', 'REGIONS', 'SIZE', 'AGE', 'TAGS'],
          custom.map((i) => [
            String(i.id),
            i.name ?? '',
            i.status ?? '',
            i.regions.join(',') || '-',
            i.size_gigabytes ? `${i.size_gigabytes} GB` : '-',
            i.created_at ? formatAge(now - Date.parse(i.created_at)) : '-',
            i.tags.join(',') || '-',
          ]),
        ),
      };
    }
    case 'delete': {
      if (!target)
        throw new UsageError('image delete needs an image id or name', {
          hint: 'e.g. innisfree image delete 38413969 (see innisfree image list)',
        });
      const client = await createDigitalOceanClient(ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) });
      const image = await images.resolveImage(client, target);
      await images.deleteImage(client, image.id);
      if (options.json) return { output: `${JSON.stringify({ deleted: image.id, name: image.name }, null, 2)}\n` };
      return { output: `Deleted image ${image.id} (${image.name}).\n` };
    }
    default:
      throw new UsageError(action ? `unknown image action "${action}"` : 'image needs an action', {
        hint:
          'use innisfree image upload --url URL --region REGION, innisfree image list, or innisfree image delete ' +
          'ID|NAME',
      });
  }
}
