// What `innisfree doctor` asks the DigitalOcean API: is the token accepted, is the account active, is there room
// under the droplet limit. A missing token is a failed check (exit 9), a rejected one a provider failure (exit 3).
import { z } from 'zod';
import { InnisfreeError, UsageError, formatError } from '../../lib/errors.js';
import type { Check } from '../../lib/requirements.js';
import { tokenFileFrom } from '../../spec/load.js';
import type { ProviderContext } from '../provider.js';
import { createDigitalOceanClient } from './index.js';

const AccountSchema = z.looseObject({
  account: z.looseObject({
    droplet_limit: z.number().nullish(),
    email: z.string().nullish(),
    status: z.string().nullish(),
    status_message: z.string().nullish(),
  }),
});
const CountSchema = z.looseObject({ meta: z.looseObject({ total: z.number().nullish() }).nullish() });

/** For `innisfree doctor`: a token the API accepts, an active account, room under the droplet limit. */
export async function accountChecks(ctx: ProviderContext, flags: Record<string, unknown>): Promise<Check[]> {
  let client;
  try {
    client = await createDigitalOceanClient(ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) });
  } catch (error) {
    if (error instanceof UsageError)
      return [{ name: 'DigitalOcean token', status: 'fail', detail: formatError(error), kind: 'environment' }];
    throw error;
  }
  let account: z.output<typeof AccountSchema>['account'];
  try {
    account = (await client.get('/v2/account', AccountSchema)).account;
  } catch (error) {
    if (!(error instanceof InnisfreeError)) throw error;
    const rejected = (error as { status?: number }).status === 401;
    return [
      {
        name: 'DigitalOcean token',
        status: 'fail',
        detail: rejected ? `the token was rejected: ${formatError(error)}` : formatError(error),
        kind: 'provider',
      },
    ];
  }
  const checks: Check[] = [
    {
      name: 'DigitalOcean token',
      status: 'ok',
      detail: `accepted${account.email ? ` (${account.email})` : ''}`,
      kind: 'provider',
    },
  ];
  if (account.status && account.status !== 'active') {
    checks.push({
      name: 'DigitalOcean account',
      status: account.status === 'locked' ? 'fail' : 'warn',
      detail: `${account.status}${account.status_message ? `: ${account.status_message}` : ''}`,
      kind: 'provider',
    });
  }
  let used: number | undefined;
  try {
    used = (await client.get('/v2/droplets', CountSchema, { query: { per_page: 1 } })).meta?.total ?? undefined;
  } catch (error) {
    if (!(error instanceof InnisfreeError)) throw error;
    checks.push({
      name: 'droplet limit',
      status: 'fail',
      detail: `could not count droplets: ${formatError(error)}`,
      kind: 'provider',
    });
    return checks;
  }
  const limit = account.droplet_limit ?? undefined;
  if (used !== undefined && limit !== undefined) {
    const free = limit - used;
    checks.push({
      name: 'droplet limit',
      status: free > 0 ? 'ok' : 'fail',
      detail:
        free > 0
          ? `${used} of ${limit} droplets used, room for ${free} more`
          : `all ${limit} droplets used; destroy some (innisfree clean) or ask DigitalOcean to raise the limit`,
      kind: 'provider',
    });
  }
  return checks;
}
