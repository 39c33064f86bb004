// innisfree doctor: can this machine run tunnels with the chosen provider? For digitalocean: a token that the API
// accepts, room under the droplet limit, and the home-side tools (WireGuard, ip, ssh, nix, deploy-rs) with the
// privileges to use them. For local: nginx with the stream module, sshd, wireguard-go, nft, nix-instantiate, root.
// Every check prints one line; a missing tool names the Debian and Nix package to install. Exit 3 when
// DigitalOcean rejects the token or the account cannot take an edge, 9 when something on this machine is missing.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { findExecutable } from '../lib/executables.js';
import { hasNetAdmin } from '../lib/privileges.js';
import type { Context, Env } from '../lib/context.js';
import { ExitCode, InnisfreeError, UsageError, formatError } from '../lib/errors.js';
import { renderTable } from '../lib/table.js';
import { tokenFileFrom } from '../providers/index.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What a failure means for the exit code. */
  kind: 'provider' | 'environment';
}

export interface DoctorOptions {
  flags: Record<string, unknown>;
  json: boolean;
}

interface Tool {
  name: string;
  /** Executables that satisfy it (any one). */
  binaries: string[];
  why: string;
  /** What to install, naming the Debian and the Nix package. */
  install: string;
}

const HOME_TOOLS: Tool[] = [
  { name: 'wg', binaries: ['wg'], why: 'configures WireGuard', install: 'Debian package wireguard-tools / Nix package wireguard-tools' },
  { name: 'ip', binaries: ['ip'], why: 'sets up the tunnel interface and routes', install: 'Debian package iproute2 / Nix package iproute2' },
  { name: 'ssh', binaries: ['ssh'], why: 'deploy-rs and nixos-anywhere reach the edge with it', install: 'Debian package openssh-client / Nix package openssh' },
  { name: 'nix', binaries: ['nix'], why: 'builds the edge configuration', install: 'Debian package nix-bin / Nix package nix' },
  {
    name: 'deploy',
    binaries: ['deploy'],
    why: 'deploy-rs applies edge changes with rollback',
    install: 'Nix package deploy-rs (nix profile install nixpkgs#deploy-rs; Debian has no package), or run innisfree with nix run',
  },
];

const NIXOS_ANYWHERE: Tool = {
  name: 'nixos-anywhere',
  binaries: ['nixos-anywhere'],
  why: 'installs NixOS over stock Debian (--bootstrap nixos-anywhere)',
  install: 'Nix package nixos-anywhere (Debian has no package), or run innisfree with nix run',
};

const LOCAL_TOOLS: Tool[] = [
  { name: 'nginx', binaries: ['nginx'], why: 'forwards public ports on the local edge', install: 'Debian package nginx / Nix package nginx' },
  { name: 'sshd', binaries: ['sshd'], why: 'the local edge answers SSH like a droplet', install: 'Debian package openssh-server / Nix package openssh' },
  { name: 'wireguard-go', binaries: ['wireguard-go'], why: 'userspace WireGuard for the namespaces', install: 'Debian package wireguard-go / Nix package wireguard-go' },
  { name: 'wg', binaries: ['wg'], why: 'configures WireGuard', install: 'Debian package wireguard-tools / Nix package wireguard-tools' },
  { name: 'ip', binaries: ['ip'], why: 'creates the namespaces and links', install: 'Debian package iproute2 / Nix package iproute2' },
  { name: 'nft', binaries: ['nft'], why: 'the local edge firewall and DNAT forwarding', install: 'Debian package nftables / Nix package nftables' },
  { name: 'nix-instantiate', binaries: ['nix-instantiate'], why: 'renders the edge config with the same Nix code as a droplet', install: 'Debian package nix-bin / Nix package nix' },
];

async function toolCheck(tool: Tool, env: Env): Promise<Check> {
  for (const binary of tool.binaries) {
    const path = await findExecutable(binary, env);
    if (path) return { name: tool.name, status: 'ok', detail: path, kind: 'environment' };
  }
  return {
    name: tool.name,
    status: 'fail',
    detail: `not found (${tool.why}); install ${tool.install}`,
    kind: 'environment',
  };
}

async function wireguardCheck(env: Env): Promise<Check> {
  if (existsSync('/sys/module/wireguard')) return { name: 'WireGuard', status: 'ok', detail: 'kernel module loaded', kind: 'environment' };
  const userspace = await findExecutable('wireguard-go', env);
  if (userspace) return { name: 'WireGuard', status: 'ok', detail: `no kernel module; userspace ${userspace}`, kind: 'environment' };
  return {
    name: 'WireGuard',
    status: 'fail',
    detail: 'neither the kernel module nor wireguard-go; install Debian package wireguard-go / Nix package wireguard-go (or load the wireguard module)',
    kind: 'environment',
  };
}

function privilegeCheck(what: string, rootOnly: boolean): Check {
  const root = process.getuid?.() === 0;
  const ok = rootOnly ? root : hasNetAdmin();
  return {
    name: 'privileges',
    status: ok ? 'ok' : 'fail',
    detail: ok
      ? root
        ? 'running as root'
        : 'CAP_NET_ADMIN'
      : `${what}; run as root (sudo innisfree …)${rootOnly ? '' : ' or grant CAP_NET_ADMIN'}`,
    kind: 'environment',
  };
}

async function nginxStreamCheck(ctx: Pick<Context, 'exec' | 'env'>): Promise<Check> {
  const nginx = await findExecutable('nginx', ctx.env);
  if (!nginx) return (await toolCheck(LOCAL_TOOLS[0]!, ctx.env));
  if (existsSync('/usr/lib/nginx/modules/ngx_stream_module.so')) {
    return { name: 'nginx stream', status: 'ok', detail: 'dynamic module ngx_stream_module.so', kind: 'environment' };
  }
  const version = await ctx.exec(nginx, ['-V'], { reject: false }).catch(() => undefined);
  if (version && /--with-stream(\s|=dynamic|$)/.test(`${version.stdout}${version.stderr}`)) {
    return { name: 'nginx stream', status: 'ok', detail: 'built in', kind: 'environment' };
  }
  return {
    name: 'nginx stream',
    status: 'fail',
    detail: 'nginx lacks the stream module; install Debian package libnginx-mod-stream (NixOS nginx has it built in)',
    kind: 'environment',
  };
}

const AccountSchema = z.looseObject({
  account: z.looseObject({
    droplet_limit: z.number().nullish(),
    email: z.string().nullish(),
    status: z.string().nullish(),
    status_message: z.string().nullish(),
  }),
});
const CountSchema = z.looseObject({ meta: z.looseObject({ total: z.number().nullish() }).nullish() });

async function digitalOceanChecks(ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>, flags: Record<string, unknown>): Promise<Check[]> {
  const { createDigitalOceanClient } = await import('../providers/digitalocean/index.js');
  let client;
  try {
    client = await createDigitalOceanClient(ctx, { tokenFile: await tokenFileFrom(flags, ctx.env) });
  } catch (error) {
    if (error instanceof UsageError) return [{ name: 'DigitalOcean token', status: 'fail', detail: formatError(error), kind: 'environment' }];
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
    { name: 'DigitalOcean token', status: 'ok', detail: `accepted${account.email ? ` (${account.email})` : ''}`, kind: 'provider' },
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
    checks.push({ name: 'droplet limit', status: 'fail', detail: `could not count droplets: ${formatError(error)}`, kind: 'provider' });
    return checks;
  }
  const limit = account.droplet_limit ?? undefined;
  if (used !== undefined && limit !== undefined) {
    const free = limit - used;
    checks.push({
      name: 'droplet limit',
      status: free > 0 ? 'ok' : 'fail',
      detail: free > 0 ? `${used} of ${limit} droplets used, room for ${free} more` : `all ${limit} droplets used; destroy some (innisfree clean) or ask DigitalOcean to raise the limit`,
      kind: 'provider',
    });
  }
  return checks;
}

/**
 * What this machine needs for tunnels with the provider: tools and privileges, no API calls. `up` runs these
 * before it creates anything, so a missing tool never leaves a half-made edge behind.
 */
export async function machineChecks(
  ctx: Pick<Context, 'exec' | 'env'>,
  provider: string,
  options: { bootstrap?: string } = {},
): Promise<Check[]> {
  if (provider === 'digitalocean') {
    const checks: Check[] = [];
    const tools = options.bootstrap === 'nixos-anywhere' ? [...HOME_TOOLS, NIXOS_ANYWHERE] : HOME_TOOLS;
    for (const tool of tools) checks.push(await toolCheck(tool, ctx.env));
    checks.push(await wireguardCheck(ctx.env));
    checks.push(privilegeCheck('the tunnel interface needs CAP_NET_ADMIN', false));
    return checks;
  }
  if (provider === 'local') {
    const checks: Check[] = [await nginxStreamCheck(ctx)];
    for (const tool of LOCAL_TOOLS.slice(1)) checks.push(await toolCheck(tool, ctx.env));
    checks.push(privilegeCheck('the local provider creates network namespaces', true));
    return checks;
  }
  throw new UsageError(`unknown provider "${provider}"`, { hint: 'use --provider digitalocean or --provider local' });
}

export async function runChecks(ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal' | 'exec'>, flags: Record<string, unknown>): Promise<Check[]> {
  const provider = typeof flags.provider === 'string' ? flags.provider : 'digitalocean';
  const api = provider === 'digitalocean' ? await digitalOceanChecks(ctx, flags) : [];
  return [...api, ...(await machineChecks(ctx, provider))];
}

export function exitCodeOfChecks(checks: readonly Check[]): number {
  const failed = checks.filter((c) => c.status === 'fail');
  if (failed.some((c) => c.kind === 'provider')) return ExitCode.provider;
  if (failed.length > 0) return ExitCode.environment;
  return ExitCode.ok;
}

export async function doctorCommand(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal' | 'exec'>,
  options: DoctorOptions,
): Promise<{ output: string; exitCode: number }> {
  const checks = await runChecks(ctx, options.flags);
  const exitCode = exitCodeOfChecks(checks);
  if (options.json) return { output: `${JSON.stringify({ ok: exitCode === 0, exitCode, checks }, null, 2)}\n`, exitCode };
  const mark = { ok: 'ok', warn: 'warn', fail: 'FAIL' } as const;
  const table = renderTable(['CHECK', 'STATUS', 'DETAIL'], checks.map((c) => [c.name, mark[c.status], c.detail]));
  const failed = checks.filter((c) => c.status === 'fail');
  const summary =
    failed.length === 0
      ? 'All checks passed.\n'
      : `${failed.length} problem${failed.length === 1 ? '' : 's'}: ${failed.map((c) => c.name).join(', ')}.\n`;
  return { output: table + summary, exitCode };
}
