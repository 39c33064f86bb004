// Builds the DigitalOcean adapter from the CLI's context: token, API base URL (DIGITALOCEAN_API_URL for tests),
// client and provider. Commands that need more than the Provider port (image, doctor) use the client directly.
import type { ProviderContext } from '../provider.js';
import { DigitalOceanClient, apiBaseUrl } from './client.js';
import { DigitalOceanProvider } from './digitalocean-provider.js';
import type { Timing } from './timing.js';
import { resolveToken } from './token.js';

export interface DigitalOceanOptions {
  tokenFile?: string | undefined;
  /** Manage a cloud firewall matching the edge's open ports. */
  firewall?: boolean;
  timing?: Partial<Timing>;
  /** Per-request timeout. */
  requestTimeoutMs?: number;
}

export async function createDigitalOceanClient(
  ctx: ProviderContext,
  options: DigitalOceanOptions = {},
): Promise<DigitalOceanClient> {
  const baseUrl = apiBaseUrl(ctx.env.DIGITALOCEAN_API_URL);
  const token = await resolveToken(ctx, options.tokenFile);
  return new DigitalOceanClient({
    token,
    baseUrl,
    clock: ctx.clock,
    emit: ctx.emit,
    signal: ctx.signal,
    ...(options.requestTimeoutMs ? { timeoutMs: options.requestTimeoutMs } : {}),
  });
}

export async function createDigitalOceanProvider(
  ctx: ProviderContext,
  options: DigitalOceanOptions = {},
): Promise<DigitalOceanProvider> {
  const client = await createDigitalOceanClient(ctx, options);
  return new DigitalOceanProvider({
    client,
    clock: ctx.clock,
    ...(options.firewall === undefined ? {} : { firewall: options.firewall }),
    ...(options.timing ? { timing: options.timing } : {}),
  });
}

export { DigitalOceanClient } from './client.js';
export { DigitalOceanError } from './api-errors.js';
export { DigitalOceanProvider } from './digitalocean-provider.js';
