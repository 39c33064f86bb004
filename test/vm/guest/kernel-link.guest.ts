// Runs INSIDE the VM test bed (a kernel with wireguard.ko; see test/vm/kernel-path.test.ts), never on the host:
// the link manager's kernel branch, which every NixOS home host takes, end to end in network namespaces.
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type WireguardLink, wireguardSocketPath, wireguardUp } from '../../../src/home/wireguard.js';
import { systemExec } from '../../../src/lib/context.js';
import { DataPlaneError } from '../../../src/lib/errors.js';
import { built } from '../../helpers/cli.js';
import { type Namespace, type Testbed, pidsIn, withTestbed } from '../../helpers/netns.js';
import { assertChecks, checksIn } from '../../helpers/traffic.js';
import { EDGE_TUNNEL, EDGE_VETH, EDGE_WG_PORT, type TunnelPair, keyFiles, tunnelPair } from '../../helpers/tunnel.js';

const S = suite('kernel WireGuard link (inside the VM)');
const deps = { exec: systemExec, emit: () => {} };

async function linkType(ns: Namespace, ifname: string): Promise<string | undefined> {
  const result = await ns.run('ip', ['-d', '-j', 'link', 'show', 'dev', ifname]);
  if (result.code !== 0) return undefined;
  return (JSON.parse(result.stdout) as Array<{ linkinfo?: { info_kind?: string } }>)[0]?.linkinfo?.info_kind;
}

async function probeTunnel(bed: Testbed, pair: TunnelPair): Promise<void> {
  const server = bed.spawn(pair.edge, process.execPath, [
    built('test/helpers/traffic.ts'),
    'serve',
    EDGE_TUNNEL,
    '7000',
  ]);
  await server.waitForOutput(/^READY/);
  assertChecks(
    await checksIn(pair.home, [{ kind: 'udp-echo', host: EDGE_TUNNEL, port: 7000, datagrams: 3, size: 200 }]),
  );
  await server.stop();
}

S(
  'auto takes the kernel: both ends are wireguard devices, no daemon, traffic flows, status comes from the kernel',
  async () => {
    await withTestbed('vm-kernel', async (bed) => {
      const pair = await tunnelPair(bed);
      assert.is(pair.homeLink.implementation, 'kernel');
      assert.is(pair.edgeLink.implementation, 'kernel');
      assert.is(await linkType(pair.home, pair.homeInterface), 'wireguard');
      assert.is(await linkType(pair.edge, pair.edgeInterface), 'wireguard');
      assert.equal(await pidsIn(pair.home, 'wireguard-go'), [], 'no wireguard-go at home');
      assert.not.ok(existsSync(wireguardSocketPath(pair.homeInterface)), 'a kernel link has no userspace socket');
      await probeTunnel(bed, pair);
      const status = await pair.homeLink.status();
      assert.ok(status.latestHandshake > 0, 'a handshake happened');
      assert.ok(status.rxBytes > 0 && status.txBytes > 0, 'the kernel counted bytes');
      assert.is(status.endpoint, `${EDGE_VETH}:${EDGE_WG_PORT}`);
      const listen = await pair.edge.run('wg', ['show', pair.edgeInterface, 'listen-port']);
      assert.is(listen.stdout.trim(), String(EDGE_WG_PORT));
      const keepalive = await pair.home.run('wg', ['show', pair.homeInterface, 'persistent-keepalive']);
      assert.match(keepalive.stdout, /\t25\n?$/);
      const mtu = await pair.home.ip('-j', 'link', 'show', 'dev', pair.homeInterface);
      assert.is((JSON.parse(mtu) as Array<{ mtu: number }>)[0]!.mtu, 1420);
      await pair.homeLink.setEndpoint(`${EDGE_VETH}:${EDGE_WG_PORT}`);
      await pair.homeLink.down();
      assert.is(await linkType(pair.home, pair.homeInterface), undefined, 'down removes the kernel link');
      await pair.homeLink.down();
    });
  },
);

S('a stale kernel link of the same name, left by a SIGKILLed run, is replaced, not reused', async () => {
  await withTestbed('vm-stale', async (bed) => {
    const ns = await bed.namespace();
    const keys = keyFiles(bed);
    const key = keys.write('home');
    const peer = keys.write('peer');
    const ifname = bed.wireguardName();
    // What a killed run leaves: a kernel device with its old address, up.
    await ns.runOk('ip', ['link', 'add', 'dev', ifname, 'type', 'wireguard']);
    await ns.runOk('ip', ['addr', 'add', '10.50.8.2/30', 'dev', ifname]);
    const link = await wireguardUp(deps, {
      interface: ifname,
      privateKeyFile: key.file,
      addresses: ['10.50.9.2/30'],
      mtu: 1420,
      peer: {
        publicKey: peer.publicKey,
        endpoint: '198.51.100.9:51820',
        allowedIps: ['10.50.9.1/32'],
        persistentKeepalive: 25,
      },
      netns: ns.name,
    });
    assert.is(link.implementation, 'kernel');
    const addresses = (await ns.run('ip', ['-br', 'addr', 'show', 'dev', ifname])).stdout;
    assert.match(addresses, /10\.50\.9\.2\/30/);
    assert.not.match(addresses, /10\.50\.8\.2/, 'the stale address went with the stale link');
    const peers = (await ns.run('wg', ['show', ifname, 'peers'])).stdout.trim();
    assert.is(peers, peer.publicKey);
    await link.down();
    assert.is(await linkType(ns, ifname), undefined);
  });
});

S('a kernel link deleted under a running tunnel is reported as a failure', async () => {
  await withTestbed('vm-gone', async (bed) => {
    const ns = await bed.namespace();
    const keys = keyFiles(bed);
    const ifname = bed.wireguardName();
    const link: WireguardLink = await wireguardUp(deps, {
      interface: ifname,
      privateKeyFile: keys.write('home').file,
      addresses: ['10.50.9.2/30'],
      mtu: 1420,
      peer: { publicKey: keys.write('peer').publicKey, allowedIps: ['10.50.9.1/32'] },
      listenPort: 51820,
      netns: ns.name,
    });
    assert.is(link.implementation, 'kernel');
    await ns.runOk('ip', ['link', 'del', 'dev', ifname]);
    const error = await Promise.race([
      link.failure.catch((e: unknown) => e),
      delay(15_000).then(() => 'no failure within 15 s'),
    ]);
    assert.instance(error, DataPlaneError);
    assert.match((error as Error).message, new RegExp(`${ifname}.*(removed|gone|disappeared)`));
    await link.down();
  });
});

S.run();
