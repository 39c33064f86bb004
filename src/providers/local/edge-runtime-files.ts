// The files that make a local edge answer like a real one: the sshd config (its own host key, the tunnel's key for
// root, a PATH and directory for the edge commands, a home of its own) and the two commands on that PATH. Pure
// text builders.
import { EDGE_STATUS_ENV, type EdgeStatusVariable, sshdHardeningLines } from '../../edge/edge-settings.js';
import type { RuntimePaths } from './layout.js';

export const AGENT_COMMAND = 'innisfree-local-edge';
export const LOCAL_EDGE_DIR_ENV = 'INNISFREE_LOCAL_EDGE_DIR';

/** The PATH of a session on a local edge: its commands first, then the system's. */
export function edgeSessionPath(paths: RuntimePaths): string {
  return `${paths.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
}

export function sshdConfigText(paths: RuntimePaths, port: number): string {
  return [
    '# innisfree local edge: an sshd inside the edge network namespace',
    `Port ${port}`,
    `HostKey ${paths.hostKey}`,
    `AuthorizedKeysFile ${paths.authorizedKeys}`,
    `PidFile ${paths.sshdPid}`,
    // Keys only, as on a NixOS edge (nix/edge-settings.json).
    ...sshdHardeningLines(),
    'PubkeyAuthentication yes',
    // The runtime directory is root's own; sshd's ownership checks would refuse a temp directory in tests.
    'StrictModes no',
    'UsePAM no',
    'PrintMotd no',
    'LogLevel INFO',
    // The edge commands (innisfree-edge-status, innisfree-local-edge) are found like on a real edge: on PATH.
    // HOME is the edge's own: sshd runs root's shell, and bash would otherwise source this host's ~/.bashrc, which
    // can change PATH or block (a stale pyenv rehash lock held every session for 60 s).
    `SetEnv PATH=${edgeSessionPath(paths)} HOME=${paths.home} ${LOCAL_EDGE_DIR_ENV}=${paths.dir}`,
    '',
  ].join('\n');
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command on the edge's PATH that runs the local edge agent (the activation script shipped in this package). */
export function agentWrapperText(nodePath: string, agentScript: string, subcommand?: string): string {
  return (
    `#!/bin/sh\nexec ${shellQuote(nodePath)} ${shellQuote(agentScript)}` +
    `${subcommand ? ` ${subcommand}` : ''} "$@"\n`
  );
}

export interface EdgeStatusSettings extends Record<EdgeStatusVariable, string> {
  name: string;
  /** The WireGuard interface of the serving config ("none" before the first deployment). */
  interface: string;
  forwarding: 'nginx' | 'nftables';
  hashFile: string;
  /** A shell command that succeeds while the forwarder is active. */
  forwarderCheck: string;
}

/** The settings nix/edge-status.sh reads, as a file the status command sources; rewritten on every activation. */
export function edgeStatusEnvText(settings: EdgeStatusSettings): string {
  return [
    ...(Object.keys(EDGE_STATUS_ENV) as EdgeStatusVariable[]).map(
      (key) => `${EDGE_STATUS_ENV[key]}=${shellQuote(settings[key])}`,
    ),
    '',
  ].join('\n');
}

/** innisfree-edge-status on a local edge: the same script a NixOS edge runs, with this edge's settings. */
export function edgeStatusWrapperText(envFile: string, script: string): string {
  return `#!/bin/sh\nset -a\n. ${shellQuote(envFile)}\nset +a\nexec bash ${shellQuote(script)}\n`;
}

/** The forwarder checks: nginx's master process is alive, or the nftables forwarding table is loaded. */
export function forwarderCheckFor(forwarding: 'nginx' | 'nftables', nginxPidFile: string, nftFamily: string): string {
  return forwarding === 'nginx'
    ? `kill -0 "$(cat ${shellQuote(nginxPidFile)} 2>/dev/null)"`
    : `nft list table ${nftFamily} innisfree`;
}
