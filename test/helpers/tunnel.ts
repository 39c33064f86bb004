// A WireGuard tunnel between two fresh namespaces, "edge" and "home", joined by a veth pair:
//   edge ns: veth 198.51.100.1/29, WireGuard 10.50.0.1/30 listening on 51820
//   home ns: veth 198.51.100.2/29, WireGuard 10.50.0.2/30 dialling the edge
// Built with the product's own link manager (src/home/wireguard.ts), torn down with the bed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemExec } from '../../src/lib/context.js';
import type { Emit } from '../../src/lib/events.js';
import { generateWireguardKeyPair } from '../../src/lib/keys.js';
import { type WireguardLink, wireguardUp } from '../../src/home/wireguard.js';
import type { Namespace, Testbed } from './netns.js';

export const EDGE_VETH = '198.51.100.1';
export const HOME_VETH = '198.51.100.2';
export const EDGE_TUNNEL = '10.50.0.1';
export const HOME_TUNNEL = '10.50.0.2';
export const EDGE_WG_PORT = 51820;

/** Both namespaces and the edge end; the home end is left to the test (e.g. to the data plane under test). */
export interface TunnelEnds {
  edge: Namespace;
  home: Namespace;
  edgeLink: WireguardLink;
  edgePublicKey: string;
  homePublicKey: string;
  homePrivateKeyFile: string;
  edgePrivateKeyFile: string;
  homeInterface: string;
  edgeInterface: string;
}

export interface TunnelPair extends TunnelEnds {
  homeLink: WireguardLink;
}

export function keyFiles(bed: Testbed): { dir: string; write(name: string): { file: string; publicKey: string } } {
  const dir = bed.tempDir();
  return {
    dir,
    write: (name) => {
      const pair = generateWireguardKeyPair();
      const file = join(dir, `${name}.key`);
      writeFileSync(file, `${pair.privateKey}\n`, { mode: 0o600 });
      return { file, publicKey: pair.publicKey };
    },
  };
}

export async function tunnelPair(bed: Testbed, options: { emit?: Emit; mtu?: number } = {}): Promise<TunnelPair> {
  const ends = await tunnelEnds(bed, options);
  const homeLink = await wireguardUp(
    { exec: systemExec, emit: options.emit ?? (() => {}) },
    {
      interface: ends.homeInterface,
      privateKeyFile: ends.homePrivateKeyFile,
      addresses: [`${HOME_TUNNEL}/30`],
      mtu: options.mtu ?? 1420,
      peer: {
        publicKey: ends.edgePublicKey,
        endpoint: `${EDGE_VETH}:${EDGE_WG_PORT}`,
        allowedIps: [`${EDGE_TUNNEL}/32`],
        persistentKeepalive: 25,
      },
      netns: ends.home.name,
    },
  );
  bed.track({ describe: `link ${ends.homeInterface}`, release: () => homeLink.down(), check: async () => undefined });
  return { ...ends, homeLink };
}

export async function tunnelEnds(bed: Testbed, options: { emit?: Emit; mtu?: number } = {}): Promise<TunnelEnds> {
  const emit = options.emit ?? (() => {});
  const edge = await bed.namespace('isfe-');
  const home = await bed.namespace('isfh-');
  await bed.veth(edge, home, { a: `${EDGE_VETH}/29`, b: `${HOME_VETH}/29` });
  const keys = keyFiles(bed);
  const edgeKey = keys.write('edge');
  const homeKey = keys.write('home');
  const edgeInterface = bed.wireguardName('isfwe');
  const homeInterface = bed.wireguardName('isfwh');
  const deps = { exec: systemExec, emit };
  const edgeLink = await wireguardUp(deps, {
    interface: edgeInterface,
    privateKeyFile: edgeKey.file,
    addresses: [`${EDGE_TUNNEL}/30`],
    mtu: options.mtu ?? 1420,
    listenPort: EDGE_WG_PORT,
    peer: { publicKey: homeKey.publicKey, allowedIps: [`${HOME_TUNNEL}/32`] },
    netns: edge.name,
  });
  bed.track({ describe: `link ${edgeInterface}`, release: () => edgeLink.down(), check: async () => undefined });
  return {
    edge,
    home,
    edgeLink,
    edgePublicKey: edgeKey.publicKey,
    homePublicKey: homeKey.publicKey,
    edgePrivateKeyFile: edgeKey.file,
    homePrivateKeyFile: homeKey.file,
    homeInterface,
    edgeInterface,
  };
}
