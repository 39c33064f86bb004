// Picks a provider adapter by name and loads it lazily, so a command only pays for the adapter it uses.
import type { Env } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { loadDefaults } from '../spec/load.js';
import { tokenFileOf } from '../spec/sources.js';
import { PROVIDERS } from '../spec/tunnel.js';
import type { Provider, ProviderContext } from './provider.js';

export type { ProviderContext } from './provider.js';

export interface ProviderOptions {
  /** DigitalOcean: file holding the API token (else DIGITALOCEAN_TOKEN / DIGITALOCEAN_ACCESS_TOKEN). */
  tokenFile?: string | undefined;
  /** DigitalOcean: manage a cloud firewall matching the edge's ports. */
  firewall?: boolean;
}

export async function createProvider(name: string, ctx: ProviderContext, options: ProviderOptions = {}): Promise<Provider> {
  switch (name) {
    case 'digitalocean': {
      const { createDigitalOceanProvider } = await import('./digitalocean/index.js');
      return createDigitalOceanProvider(ctx, options);
    }
    case 'local': {
      const { createLocalProvider } = await import('./local/index.js');
      return createLocalProvider(ctx);
    }
    default:
      throw new UsageError(
        (PROVIDERS as readonly string[]).includes(name)
          ? `provider "${name}" is not available in this build`
          : `unknown provider "${name}"`,
        { hint: 'use --provider digitalocean, or --provider local for an edge in network namespaces on this machine' },
      );
  }
}

/** The token file for commands that take no tunnel spec: --token-file, else INNISFREE_TOKEN_FILE, else config.json. */
export async function tokenFileFrom(flags: Record<string, unknown>, env: Env): Promise<string | undefined> {
  if (typeof flags.tokenFile === 'string' && flags.tokenFile !== '') return flags.tokenFile;
  if (env.INNISFREE_TOKEN_FILE) return env.INNISFREE_TOKEN_FILE;
  return tokenFileOf((await loadDefaults(env)).data);
}
