import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type WireguardLink, wireguardSocketPath, wireguardUp } from '../../src/home/wireguard.js';
import { systemExec } from '../../src/lib/context.js';
import { DataPlaneError } from '../../src/lib/errors.js';
import { built } from '../helpers/cli.js';
import {
  type Testbed,
  namespaceSkipReason,
  needsCommand,
  pidAlive,
  pidsIn,
  skipUnless,
  waitFor,
  withTestbed,
} from '../helpers/netns.js';
import { assertChecks, checksIn } from '../helpers/traffic.js';
import { EDGE_TUNNEL, EDGE_VETH, EDGE_WG_PORT, type TunnelPair, keyFiles, tunnelPair } from '../helpers/tunnel.js';

const S = suite('wireguard link (network namespaces)');
const skip = skipUnless('wireguard link tests', namespaceSkipReason, needsCommand('wg'), needsCommand('wireguard-go'));
const deps = { exec: systemExec, emit: () => {} };

/** A UDP round trip from the home end to a server on the edge's tunnel address: proof the tunnel carries traffic. */
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

async function linkGone(
  ns: { run: (c: string, a: string[]) => Promise<{ code: number | null }> },
  ifname: string,
): Promise<boolean> {
  return (await ns.run('ip', ['link', 'show', 'dev', ifname])).code !== 0 && !existsSync(wireguardSocketPath(ifname));
}

if (!skip) {
  S('two ends handshake, carry traffic, report status and tear down', async () => {
    await withTestbed('wg-basic', async (bed) => {
      const pair = await tunnelPair(bed);
      assert.is(pair.homeLink.implementation, 'wireguard-go');
      await probeTunnel(bed, pair);
      const status = await pair.homeLink.status();
      assert.is(status.interface, pair.homeInterface);
      assert.ok(status.latestHandshake > 0, 'a handshake happened');
      assert.ok(status.handshakeAge !== null && status.handshakeAge < 30);
      assert.ok(status.rxBytes > 0 && status.txBytes > 0);
      assert.is(status.endpoint, `${EDGE_VETH}:${EDGE_WG_PORT}`);
      // The listening end learnt the home end's address from the handshake.
      assert.match((await pair.edgeLink.status()).endpoint ?? '', /^198\.51\.100\.2:\d+$/);
      const mtu = await pair.home.ip('-j', 'link', 'show', 'dev', pair.homeInterface);
      assert.is((JSON.parse(mtu) as Array<{ mtu: number }>)[0]!.mtu, 1420);

      await pair.homeLink.down();
      await pair.edgeLink.down();
      assert.ok(await linkGone(pair.home, pair.homeInterface), 'home link and socket removed');
      assert.ok(await linkGone(pair.edge, pair.edgeInterface), 'edge link and socket removed');
      // down() is idempotent.
      await pair.homeLink.down();
    });
  });

  S('the peer endpoint moves in place when the edge address changes', async () => {
    await withTestbed('wg-endpoint', async (bed) => {
      const pair = await tunnelPair(bed);
      await probeTunnel(bed, pair);
      const vethEdge = (
        JSON.parse(await pair.edge.ip('-j', 'addr', 'show')) as Array<{
          ifname: string;
          addr_info: Array<{ local: string }>;
        }>
      ).find((link) => link.addr_info.some((a) => a.local === EDGE_VETH))!.ifname;
      // Deleting the primary address first: it would take a secondary in the same subnet with it.
      await pair.edge.ip('addr', 'del', `${EDGE_VETH}/29`, 'dev', vethEdge);
      await pair.edge.ip('addr', 'add', '198.51.100.5/29', 'dev', vethEdge);
      await pair.homeLink.setEndpoint(`198.51.100.5:${EDGE_WG_PORT}`);
      await probeTunnel(bed, pair);
      assert.is((await pair.homeLink.status()).endpoint, `198.51.100.5:${EDGE_WG_PORT}`);
      try {
        await pair.homeLink.setEndpoint('not an endpoint');
        assert.unreachable('accepted a bad endpoint');
      } catch (error) {
        assert.instance(error, DataPlaneError);
      }
    });
  });

  S('a stale daemon and socket of the same interface are replaced', async () => {
    await withTestbed('wg-stale', async (bed) => {
      const ns = await bed.namespace();
      const keys = keyFiles(bed);
      const key = keys.write('home');
      const peer = keys.write('peer');
      const ifname = bed.wireguardName();
      // A crashed earlier run: its daemon is still up, holding the name.
      const orphan = bed.spawn(ns, 'wireguard-go', [ifname], { env: { WG_PROCESS_FOREGROUND: '1' } });
      await waitFor('the orphan daemon', async () =>
        (await ns.run('ip', ['link', 'show', 'dev', ifname])).code === 0 ? true : undefined,
      );
      const spec = {
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
      };
      const link = await wireguardUp(deps, spec);
      await orphan.exited;
      assert.ok(
        await ns.run('ip', ['-br', 'addr', 'show', 'dev', ifname]).then((r) => r.stdout.includes('10.50.9.2/30')),
      );
      await link.down();
      // A dead socket file left by a SIGKILLed daemon.
      const socketPath = wireguardSocketPath(ifname);
      await new Promise<void>((resolve) => {
        const server = createServer().listen(socketPath, () => server.close(() => resolve()));
      });
      writeFileSync(socketPath, '');
      const again = await wireguardUp(deps, spec);
      await again.down();
      assert.ok(await linkGone(ns, ifname));
    });
  });

  S('the link reports a failure when its daemon dies, and a crashed owner takes the daemon with it', async () => {
    await withTestbed('wg-fault', async (bed) => {
      const ns = await bed.namespace();
      const keys = keyFiles(bed);
      const key = keys.write('home');
      const peer = keys.write('peer');
      const ifname = bed.wireguardName();
      const spec = {
        interface: ifname,
        privateKeyFile: key.file,
        addresses: ['10.50.9.2/30'],
        mtu: 1420,
        peer: { publicKey: peer.publicKey, allowedIps: ['10.50.9.1/32'] },
        listenPort: 51820,
        netns: ns.name,
      };
      const link: WireguardLink = await wireguardUp(deps, spec);
      await ns.runOk('ip', ['link', 'del', 'dev', ifname]);
      try {
        await link.failure;
        assert.unreachable('no failure reported');
      } catch (error) {
        assert.instance(error, DataPlaneError);
        assert.match((error as Error).message, /wireguard-go for .* exited unexpectedly/);
      }
      await link.down();

      // The owner (an innisfree process) is killed outright: its wireguard-go must not outlive it.
      const holder = bed.spawn(undefined, process.execPath, [built('test/helpers/wg-holder.ts'), JSON.stringify(spec)]);
      await holder.waitForOutput(/^UP wireguard-go/);
      const [daemonPid = 0] = await pidsIn(ns, 'wireguard-go');
      assert.ok(daemonPid > 0 && pidAlive(daemonPid), 'wireguard-go runs in the namespace');
      await holder.stop('SIGKILL');
      await waitFor('wireguard-go to exit after its owner died', () => (pidAlive(daemonPid) ? undefined : true), 5_000);
      await waitFor('the link to disappear', async () => ((await linkGone(ns, ifname)) ? true : undefined), 5_000);
    });
  });

  S('bad specs are refused before anything is created', async () => {
    const base = {
      interface: 'isf-this-name-is-too-long',
      privateKeyFile: '/nonexistent',
      addresses: ['10.50.9.2/30'],
      mtu: 1420,
      peer: { publicKey: 'x', allowedIps: ['10.50.9.1/32'] },
    };
    for (const spec of [
      base,
      { ...base, interface: 'isfok' },
      {
        ...base,
        interface: 'isfok',
        peer: { ...base.peer, publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=' },
        mtu: 100,
      },
    ]) {
      try {
        await wireguardUp(deps, spec);
        assert.unreachable('accepted a bad spec');
      } catch (error) {
        assert.instance(error, DataPlaneError);
      }
    }
  });
}

S.run();
