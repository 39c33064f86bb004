// Where innisfree keeps state and configuration on the home host.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Env } from '../lib/context.js';

/**
 * The root holding one directory per tunnel. INNISFREE_STATE_DIR wins (the NixOS home module points it at the
 * systemd StateDirectory); otherwise $XDG_STATE_HOME/innisfree, defaulting to ~/.local/state/innisfree.
 */
export function stateRoot(env: Env): string {
  // Absolute from the start: the state directory's paths end up in the per-tunnel flake, in ssh's -i and
  // UserKnownHostsFile, and in the local edge's record, all read from other working directories.
  if (env.INNISFREE_STATE_DIR) return resolve(env.INNISFREE_STATE_DIR);
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return resolve(base, 'innisfree');
}

/** $XDG_CONFIG_HOME/innisfree/config.json (defaults for every tunnel). */
export function configFile(env: Env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return resolve(base, 'innisfree', 'config.json');
}

/** Reserved IPs `down` kept, by tunnel, so `down NAME --release-ip` finds them after the tunnel's state is gone. */
export function keptReservedIpsFile(root: string, family: 4 | 6 = 4): string {
  return join(root, family === 4 ? 'kept-reserved-ips.json' : 'kept-reserved-ipv6.json');
}

/** The layout of one tunnel's state directory. */
export function tunnelPaths(root: string, name: string) {
  const dir = join(root, name);
  return {
    dir,
    lock: join(dir, 'lock'),
    tunnel: join(dir, 'tunnel.json'),
    status: join(dir, 'status.json'),
    /** The home-side plan of the last `up` (HomeConfig JSON), read by `proxy NAME`. */
    home: join(dir, 'home.json'),
    wireguardPrivate: join(dir, 'wireguard', 'private'),
    wireguardPublic: join(dir, 'wireguard', 'public'),
    sshPrivate: join(dir, 'ssh', 'id_ed25519'),
    sshPublic: join(dir, 'ssh', 'id_ed25519.pub'),
    knownHosts: join(dir, 'ssh', 'known_hosts'),
    /** The edge's SSH host key, made here and injected at create so the edge is pinned before first contact. */
    hostKeyPrivate: join(dir, 'ssh', 'edge_host_ed25519_key'),
    hostKeyPublic: join(dir, 'ssh', 'edge_host_ed25519_key.pub'),
    edgeDir: join(dir, 'edge'),
    edgeFlake: join(dir, 'edge', 'flake.nix'),
    edgeJson: join(dir, 'edge', 'edge.json'),
    /** What a run of up registered at the provider and still owns (state/resources.ts). */
    resources: join(dir, 'resources.json'),
  };
}

export type TunnelPaths = ReturnType<typeof tunnelPaths>;
