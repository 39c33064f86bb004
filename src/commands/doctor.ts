// innisfree doctor: can this machine run tunnels with the chosen provider? For digitalocean: a token that the API
// accepts, room under the droplet limit, and the home-side tools (WireGuard, ip, ssh, nix, deploy-rs) with the
// privileges to use them. For local: nginx with the stream module, sshd, wireguard-go, nft, nix-instantiate, root.
// Every check prints one line; a missing tool names the Debian and Nix package to install. Exit 3 when
// DigitalOcean rejects the token or the account cannot take an edge, 9 when something on this machine is missing.
import type { Context } from '../lib/context.js';
import { type Check, exitCodeOfChecks } from '../lib/requirements.js';
import { renderTable } from '../lib/table.js';
import { providerKit } from '../providers/index.js';
import { DEFAULTS } from '../spec/tunnel.js';

export interface DoctorOptions {
  flags: Record<string, unknown>;
  json: boolean;
}

export async function runChecks(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal' | 'exec'>,
  flags: Record<string, unknown>,
): Promise<Check[]> {
  const kit = providerKit(typeof flags.provider === 'string' ? flags.provider : DEFAULTS.provider);
  const account = kit.accountChecks ? await kit.accountChecks(ctx, flags) : [];
  return [...account, ...(await kit.requirements(ctx))];
}

export async function doctorCommand(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal' | 'exec'>,
  options: DoctorOptions,
): Promise<{ output: string; exitCode: number }> {
  const checks = await runChecks(ctx, options.flags);
  const exitCode = exitCodeOfChecks(checks);
  if (options.json)
    return { output: `${JSON.stringify({ ok: exitCode === 0, exitCode, checks }, null, 2)}\n`, exitCode };
  const mark = { ok: 'ok', warn: 'warn', fail: 'FAIL' } as const;
  const table = renderTable(
    ['CHECK', 'STATUS', 'DETAIL'],
    checks.map((c) => [c.name, mark[c.status], c.detail]),
  );
  const failed = checks.filter((c) => c.status === 'fail');
  const summary =
    failed.length === 0
      ? 'All checks passed.\n'
      : `${failed.length} problem${failed.length === 1 ? '' : 's'}: ${failed.map((c) => c.name).join(', ')}.\n`;
  return { output: table + summary, exitCode };
}
