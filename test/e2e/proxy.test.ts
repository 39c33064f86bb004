// `innisfree proxy` as a user runs it, inside the home namespace of a real wireguard-go tunnel; clients in the edge
// namespace reach the home services through the tunnel address, as the edge's nginx would.
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { writeHomeConfig } from '../../src/home/home-config-file.js';
import type { HomeConfig } from '../../src/plan.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { built, cliPath } from '../helpers/cli.js';
import {
  type Namespace,
  type Proc,
  type Testbed,
  namespaceSkipReason,
  needsCommand,
  pidAlive,
  skipUnless,
  withTestbed,
} from '../helpers/netns.js';
import { assertChecks, checksIn } from '../helpers/traffic.js';
import { HOME_TUNNEL, tunnelPair } from '../helpers/tunnel.js';

const S = suite('innisfree proxy through a WireGuard tunnel (network namespaces)');
const skip = skipUnless('proxy namespace tests', namespaceSkipReason, needsCommand('wg'), needsCommand('wireguard-go'));

const SERVICE_PORT = 8080;
const DEAD_PORT = 9091;

async function startService(bed: Testbed, ns: Namespace): Promise<Proc> {
  const service = bed.spawn(ns, process.execPath, [
    built('test/helpers/traffic.ts'),
    'serve',
    '127.0.0.1',
    String(SERVICE_PORT),
  ]);
  await service.waitForOutput(/^READY/);
  return service;
}

function startProxy(bed: Testbed, ns: Namespace, args: string[], env: Record<string, string> = {}): Proc {
  return bed.spawn(ns, process.execPath, [cliPath, 'proxy', ...args], {
    env: { INNISFREE_STATE_DIR: bed.tempDir(), ...env },
  });
}

async function stopWith(proc: Proc, signal: NodeJS.Signals): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  proc.child.kill(signal);
  const exit = await proc.exited;
  return { code: exit.code, ms: Date.now() - started };
}

if (!skip) {
  S(
    'round trips, 100 MB both ways, 200 connections, half-close, dead destination; SIGTERM stops it cleanly',
    async () => {
      await withTestbed('proxy-traffic', async (bed) => {
        const pair = await tunnelPair(bed);
        await startService(bed, pair.home);
        const proxy = startProxy(bed, pair.home, [
          '--listen',
          HOME_TUNNEL,
          '--ports',
          `${SERVICE_PORT}/tcp,${SERVICE_PORT}/udp,9090:${DEAD_PORT}/tcp`,
          '--destination',
          '127.0.0.1',
        ]);
        await proxy.waitForOutput(/proxy running/);
        assert.match(proxy.output(), `forwarding ${HOME_TUNNEL}:9090/tcp -> 127.0.0.1:${DEAD_PORT}`);

        const target = { host: HOME_TUNNEL, port: SERVICE_PORT };
        const results = await checksIn(pair.edge, [
          { kind: 'tcp-echo', ...target, bytes: 1 },
          { kind: 'tcp-echo', ...target, bytes: 65_537 },
          { kind: 'tcp-echo', ...target, bytes: 3_000_000 },
          { kind: 'udp-echo', ...target, datagrams: 100, size: 1200 },
          { kind: 'udp-echo', ...target, datagrams: 20, size: 4 },
          { kind: 'tcp-upload', ...target, bytes: 100 * 1024 * 1024 },
          { kind: 'tcp-download', ...target, bytes: 100 * 1024 * 1024 },
          { kind: 'tcp-concurrent', ...target, connections: 200, bytes: 10_000 },
          { kind: 'tcp-closed', host: HOME_TUNNEL, port: 9090 },
        ]);
        assertChecks(results);

        const { code, ms } = await stopWith(proxy, 'SIGTERM');
        assert.is(code, 0);
        assert.ok(ms < 5_000, `SIGTERM took ${ms} ms`);
        assert.not.ok(pidAlive(proxy.pid));
        // 3 echoes + 2 transfers + 200 concurrent + 1 refused; 2 UDP sessions.
        assert.match(proxy.output(), /proxy stopped; 208 connections\/sessions, \d+ bytes in, \d+ bytes out, 1 errors/);
      });
    },
  );

  S('a port that cannot bind is fatal with exit 7, naming address and port; SIGINT also stops cleanly', async () => {
    await withTestbed('proxy-bind', async (bed) => {
      const pair = await tunnelPair(bed);
      const first = startProxy(bed, pair.home, ['--listen', HOME_TUNNEL, '--ports', `${SERVICE_PORT}/tcp`]);
      await first.waitForOutput(/proxy running/);
      const second = startProxy(bed, pair.home, ['--listen', HOME_TUNNEL, '--ports', `8081/udp,${SERVICE_PORT}/tcp`]);
      const exit = await second.exited;
      assert.is(exit.code, 7);
      assert.match(
        second.output(),
        `cannot listen on ${HOME_TUNNEL}:${SERVICE_PORT}/tcp: the address is already in use`,
      );
      assert.match(second.output(), /--destination none/);
      const { code } = await stopWith(first, 'SIGINT');
      assert.is(code, 0);
    });
  });

  S('proxy NAME runs the forwards up planned, from home.json', async () => {
    await withTestbed('proxy-name', async (bed) => {
      const pair = await tunnelPair(bed);
      await startService(bed, pair.home);
      const state = bed.tempDir();
      const home: HomeConfig = {
        name: 'web',
        interface: pair.homeInterface,
        address: `${HOME_TUNNEL}/30`,
        edgeAddress: '10.50.0.1',
        edgeWireguardPort: 51820,
        persistentKeepalive: 25,
        mtu: 1420,
        allowedIps: ['10.50.0.1/32'],
        policyRouting: null,
        destination: '127.0.0.1',
        forwarding: 'proxy',
        masquerade: false,
        forwards: [
          {
            protocol: 'tcp',
            listenAddress: HOME_TUNNEL,
            listenPort: SERVICE_PORT,
            targetHost: '127.0.0.1',
            targetPort: SERVICE_PORT,
          },
          {
            protocol: 'udp',
            listenAddress: HOME_TUNNEL,
            listenPort: SERVICE_PORT,
            targetHost: '127.0.0.1',
            targetPort: SERVICE_PORT,
          },
        ],
      };
      await writeHomeConfig(tunnelPaths(state, 'web'), home);
      const proxy = startProxy(bed, pair.home, ['web'], { INNISFREE_STATE_DIR: state });
      await proxy.waitForOutput(/proxy running/);
      assertChecks(
        await checksIn(pair.edge, [
          { kind: 'tcp-echo', host: HOME_TUNNEL, port: SERVICE_PORT, bytes: 50_000 },
          { kind: 'udp-echo', host: HOME_TUNNEL, port: SERVICE_PORT, datagrams: 10, size: 500 },
        ]),
      );
      assert.is((await stopWith(proxy, 'SIGTERM')).code, 0);
      assert.ok(join(state, 'web', 'home.json'));
    });
  });
}

S.run();
