// What a machine needs to run tunnels: tools on PATH, WireGuard, privileges. Pure checks of this machine, no
// network: `up` runs them before it creates anything (a missing tool must not leave a half-made edge behind), and
// `innisfree doctor` prints them. Each provider picks its set (providers/index.ts); every failure names what to
// install.
import { existsSync } from 'node:fs';
import type { Context, Env } from './context.js';
import { ExitCode } from './errors.js';
import { findExecutable } from './executables.js';
import { hasNetAdmin } from './privileges.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  /** What a failure means for the exit code. */
  kind: 'provider' | 'environment';
}

interface Tool {
  name: string;
  /** Executables that satisfy it (any one). */
  binaries: string[];
  why: string;
  /** What to install, naming the Debian and the Nix package. */
  install: string;
}

// Named once: the home host and the local edge both configure WireGuard with it.
const WG: Tool = {
  name: 'wg',
  binaries: ['wg'],
  why: 'configures WireGuard',
  install: 'Debian package wireguard-tools / Nix package wireguard-tools',
};

// Its own check looks for the stream module too (nginxStreamCheck).
const NGINX: Tool = {
  name: 'nginx',
  binaries: ['nginx'],
  why: 'forwards public ports on the local edge',
  install: 'Debian package nginx / Nix package nginx',
};

const HOME_TOOLS: Tool[] = [
  WG,
  {
    name: 'ip',
    binaries: ['ip'],
    why: 'sets up the tunnel interface and routes',
    install: 'Debian package iproute2 / Nix package iproute2',
  },
  {
    name: 'ssh',
    binaries: ['ssh'],
    why: 'deploy-rs and nixos-anywhere reach the edge with it',
    install: 'Debian package openssh-client / Nix package openssh',
  },
  {
    name: 'nix',
    binaries: ['nix'],
    why: 'builds the edge configuration',
    install: 'Debian package nix-bin / Nix package nix',
  },
  {
    name: 'deploy',
    binaries: ['deploy'],
    why: 'deploy-rs applies edge changes with rollback',
    install:
      'Nix package deploy-rs (nix profile install nixpkgs#deploy-rs; Debian has no package), or run innisfree ' +
      'with nix run',
  },
];

const NIXOS_ANYWHERE: Tool = {
  name: 'nixos-anywhere',
  binaries: ['nixos-anywhere'],
  why: 'installs NixOS over stock Debian (--bootstrap nixos-anywhere)',
  install: 'Nix package nixos-anywhere (Debian has no package), or run innisfree with nix run',
};

// The local edge's tools besides nginx.
const LOCAL_TOOLS: Tool[] = [
  {
    name: 'sshd',
    binaries: ['sshd'],
    why: 'the local edge answers SSH like a droplet',
    install: 'Debian package openssh-server / Nix package openssh',
  },
  {
    name: 'wireguard-go',
    binaries: ['wireguard-go'],
    why: 'userspace WireGuard for the namespaces',
    install: 'Debian package wireguard-go / Nix package wireguard-go',
  },
  WG,
  {
    name: 'ip',
    binaries: ['ip'],
    why: 'creates the namespaces and links',
    install: 'Debian package iproute2 / Nix package iproute2',
  },
  {
    name: 'nft',
    binaries: ['nft'],
    why: 'the local edge firewall and DNAT forwarding',
    install: 'Debian package nftables / Nix package nftables',
  },
  {
    name: 'nix-instantiate',
    binaries: ['nix-instantiate'],
    why: 'renders the edge config with the same Nix code as a droplet',
    install: 'Debian package nix-bin / Nix package nix',
  },
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
  if (existsSync('/sys/module/wireguard'))
    return { name: 'WireGuard', status: 'ok', detail: 'kernel module loaded', kind: 'environment' };
  const userspace = await findExecutable('wireguard-go', env);
  if (userspace)
    return { name: 'WireGuard', status: 'ok', detail: `no kernel module; userspace ${userspace}`, kind: 'environment' };
  return {
    name: 'WireGuard',
    status: 'fail',
    detail:
      'neither the kernel module nor wireguard-go; install Debian package wireguard-go / Nix package ' +
      'wireguard-go (or load the wireguard module)',
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
  if (!nginx) return await toolCheck(NGINX, ctx.env);
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

/** A home host that reaches a cloud edge: WireGuard, ip, ssh, nix, deploy-rs (and nixos-anywhere to install one). */
export async function cloudHomeRequirements(env: Env, options: { nixosAnywhere: boolean }): Promise<Check[]> {
  const checks: Check[] = [];
  for (const tool of options.nixosAnywhere ? [...HOME_TOOLS, NIXOS_ANYWHERE] : HOME_TOOLS)
    checks.push(await toolCheck(tool, env));
  checks.push(await wireguardCheck(env));
  checks.push(privilegeCheck('the tunnel interface needs CAP_NET_ADMIN', false));
  return checks;
}

/** An edge in network namespaces on this machine: nginx with stream, sshd, wireguard-go, nft, nix-instantiate, root. */
export async function localEdgeRequirements(ctx: Pick<Context, 'exec' | 'env'>): Promise<Check[]> {
  const checks: Check[] = [await nginxStreamCheck(ctx)];
  for (const tool of LOCAL_TOOLS) checks.push(await toolCheck(tool, ctx.env));
  checks.push(privilegeCheck('the local provider creates network namespaces', true));
  return checks;
}

/** Exit 3 when the provider's account cannot take an edge, 9 when something on this machine is missing. */
export function exitCodeOfChecks(checks: readonly Check[]): number {
  const failed = checks.filter((c) => c.status === 'fail');
  if (failed.some((c) => c.kind === 'provider')) return ExitCode.provider;
  if (failed.length > 0) return ExitCode.environment;
  return ExitCode.ok;
}
