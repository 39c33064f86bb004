// The local edge applies the same Nix-rendered config a NixOS edge gets. nix/render-edge.nix turns edge.json into {
// nginxStream, nginxMain, nftables = { family, content }, firewall = { tcp, udp } } with builtins only; this module
// runs it and wraps the results into what Debian's nginx and nft take directly. Everything but renderEdge() is pure.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Exec } from '../../lib/context.js';
import { DeployError, EnvironmentError } from '../../lib/errors.js';
import { packageRoot } from '../../lib/package-root.js';

export const RenderedEdge = z.object({
  /** The inside of nginx's stream { } block. */
  nginxStream: z.string(),
  /** What modules/edge.nix gives NixOS' nginx for events { } and the main context (limits, workers). */
  nginxMain: z.object({ eventsConfig: z.string(), appendConfig: z.string() }),
  nftables: z.object({ family: z.enum(['ip', 'ip6', 'inet']), content: z.string() }),
  /** Every port the edge accepts from the internet: SSH, the WireGuard port and the public ports. */
  firewall: z.object({
    tcp: z.array(z.number().int().min(1).max(65535)),
    udp: z.array(z.number().int().min(1).max(65535)),
  }),
});

export type RenderedEdge = z.infer<typeof RenderedEdge>;

export function rendererPath(): string {
  return join(packageRoot, 'nix', 'render-edge.nix');
}

/** The edge status script shared with NixOS edges. */
export function edgeStatusScriptPath(): string {
  return join(packageRoot, 'nix', 'edge-status.sh');
}

/** Evaluates nix/render-edge.nix for an edge.json (nix-instantiate --eval, builtins only: no nixpkgs, no network). */
export async function renderEdge(exec: Exec, edgeJsonPath: string): Promise<RenderedEdge> {
  const renderer = rendererPath();
  if (!existsSync(renderer)) {
    throw new EnvironmentError(`the Nix renderer ${renderer} is missing from this innisfree`, {
      hint: 'reinstall innisfree',
    });
  }
  let stdout: string;
  try {
    ({ stdout } = await exec('nix-instantiate', [
      '--eval',
      '--strict',
      '--json',
      renderer,
      '--argstr',
      'edgeJson',
      edgeJsonPath,
    ]));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new EnvironmentError(
        'nix-instantiate is not installed; the local provider renders the edge config with Nix',
        {
          hint: 'install Nix (apt-get install nix-bin)',
        },
      );
    }
    throw new DeployError(`rendering the edge config with Nix failed: ${(error as Error).message}`, {
      hint: 'this is a bug in innisfree (edge.json passed validation); run with --verbose',
      cause: error,
    });
  }
  const parsed = RenderedEdge.safeParse(JSON.parse(stdout));
  if (!parsed.success) {
    throw new DeployError(`nix/render-edge.nix printed an unexpected shape: ${parsed.error.issues[0]?.message}`, {
      hint: 'this is a bug in innisfree',
    });
  }
  return parsed.data;
}

export const DEBIAN_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export interface NginxPaths {
  pid: string;
  errorLog: string;
}

/**
 * nginx.conf from the Nix-rendered parts a NixOS edge gets (main context, events, stream; like NixOS' own, no
 * HTTP server): NixOS builds the stream module in, Debian ships it as a dynamic module; private pid and error log
 * so several local edges never share them.
 */
export function nginxConfText(
  rendered: Pick<RenderedEdge, 'nginxStream' | 'nginxMain'>,
  paths: NginxPaths,
  loadStreamModule: boolean,
): string {
  return [
    '# innisfree local edge: the Nix-rendered nginx configuration',
    ...(loadStreamModule ? [`load_module ${DEBIAN_STREAM_MODULE};`] : []),
    `pid ${paths.pid};`,
    `error_log ${paths.errorLog} notice;`,
    rendered.nginxMain.appendConfig.trimEnd(),
    `events { ${rendered.nginxMain.eventsConfig.trim()} }`,
    'stream {',
    rendered.nginxStream.trimEnd(),
    '}',
    '',
  ].join('\n');
}

/** Port lists for an nft set: sorted, unique, consecutive runs written as ranges. */
export function nftPortSet(ports: readonly number[]): string {
  const sorted = [...new Set(ports)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i ? `${sorted[i]}-${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return `{ ${parts.join(', ')} }`;
}

export const FIREWALL_TABLE = 'innisfree-firewall';
export const FORWARDING_TABLE = 'innisfree';

/**
 * The edge's input firewall as the NixOS firewall would build it: loopback and established traffic, ping, SSH,
 * the WireGuard port and exactly the public ports; everything else dropped. Replaces the table atomically.
 */
export function firewallRuleset(firewall: RenderedEdge['firewall'], sshPort: number, wireguardPort: number): string {
  // The renderer lists SSH and WireGuard already; adding them again keeps this edge reachable whatever it says.
  const tcp = nftPortSet([sshPort, ...firewall.tcp]);
  const udp = nftPortSet([wireguardPort, ...firewall.udp]);
  return [
    `table inet ${FIREWALL_TABLE}`,
    `delete table inet ${FIREWALL_TABLE}`,
    `table inet ${FIREWALL_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iifname "lo" accept',
    '    ct state vmap { established : accept, related : accept, invalid : drop }',
    '    meta l4proto { icmp, ipv6-icmp } accept',
    `    tcp dport ${tcp} accept`,
    `    udp dport ${udp} accept`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The rendered forwarding table (kernel DNAT), replacing any earlier one atomically. */
export function forwardingRuleset(nftables: RenderedEdge['nftables']): string {
  const table = `${nftables.family} ${FORWARDING_TABLE}`;
  return [`table ${table}`, `delete table ${table}`, `table ${table} {`, nftables.content.trimEnd(), '}', ''].join(
    '\n',
  );
}
