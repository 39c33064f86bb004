// The whole home data plane (link + policy routing + forwarder) run by a separate process inside the home namespace,
// as `up` runs it: traffic flows from the edge namespace; SIGTERM tears everything down; a dead link tears down and
// exits with the data-plane code; a crashed run leaves nothing that blocks the next one.
import { existsSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { HomeDataPlaneInput } from '../../src/home/data-plane.js';
import { wireguardSocketPath } from '../../src/home/wireguard.js';
import type { HomeConfig } from '../../src/plan.js';
import { built } from '../helpers/cli.js';
import {
  type Namespace,
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
import { EDGE_TUNNEL, EDGE_VETH, EDGE_WG_PORT, HOME_TUNNEL, type TunnelEnds, tunnelEnds } from '../helpers/tunnel.js';

const S = suite('home data plane (network namespaces)');
const skip = skipUnless(
  'data plane namespace tests',
  namespaceSkipReason,
  needsCommand('wg'),
  needsCommand('wireguard-go'),
);

const PORT = 8080;
const TABLE = 20001;

function planFor(ends: TunnelEnds): HomeDataPlaneInput {
  const home: HomeConfig = {
    name: 'web',
    interface: ends.homeInterface,
    address: `${HOME_TUNNEL}/30`,
    edgeAddress: EDGE_TUNNEL,
    edgeWireguardPort: EDGE_WG_PORT,
    persistentKeepalive: 25,
    mtu: 1420,
    allowedIps: [`${EDGE_TUNNEL}/32`],
    policyRouting: { table: TABLE, priority: 20000, from: [HOME_TUNNEL] },
    destination: '127.0.0.1',
    forwarding: 'proxy',
    masquerade: false,
    forwards: [
      { protocol: 'tcp', listenAddress: HOME_TUNNEL, listenPort: PORT, targetHost: '127.0.0.1', targetPort: PORT },
      { protocol: 'udp', listenAddress: HOME_TUNNEL, listenPort: PORT, targetHost: '127.0.0.1', targetPort: PORT },
    ],
  };
  return {
    home,
    privateKeyFile: ends.homePrivateKeyFile,
    edgePublicKey: ends.edgePublicKey,
    edgeEndpoint: `${EDGE_VETH}:${EDGE_WG_PORT}`,
    monitorIntervalMs: 500,
  };
}

function startRunner(bed: Testbed, ns: Namespace, input: HomeDataPlaneInput) {
  return bed.spawn(ns, process.execPath, [built('test/helpers/home-runner.ts'), JSON.stringify(input)]);
}

async function rulesFor(ns: Namespace): Promise<number> {
  const rules = JSON.parse(await ns.ip('-j', 'rule', 'show')) as Array<{ table: string }>;
  return rules.filter((r) => r.table === String(TABLE)).length;
}

/** Nothing of the data plane is left in the namespace: no link, control socket, daemon, rule or listener. */
async function assertTornDown(ends: TunnelEnds): Promise<void> {
  assert.is((await ends.home.run('ip', ['link', 'show', 'dev', ends.homeInterface])).code === 0, false, 'link removed');
  assert.not.ok(existsSync(wireguardSocketPath(ends.homeInterface)), 'control socket removed');
  assert.equal(await pidsIn(ends.home, 'wireguard-go'), [], 'no wireguard-go left');
  assert.is(await rulesFor(ends.home), 0, 'policy rule removed');
}

if (!skip) {
  S('carries traffic; SIGTERM stops forwarder, routing and link, leaving nothing behind', async () => {
    await withTestbed('plane-stop', async (bed) => {
      const ends = await tunnelEnds(bed);
      const service = bed.spawn(ends.home, process.execPath, [
        built('test/helpers/traffic.ts'),
        'serve',
        '127.0.0.1',
        String(PORT),
      ]);
      await service.waitForOutput(/^READY/);
      const runner = startRunner(bed, ends.home, planFor(ends));
      await runner.waitForOutput(/^READY wireguard-go/);
      assert.is(await rulesFor(ends.home), 1);
      assertChecks(
        await checksIn(ends.edge, [
          { kind: 'tcp-echo', host: HOME_TUNNEL, port: PORT, bytes: 200_000 },
          { kind: 'udp-echo', host: HOME_TUNNEL, port: PORT, datagrams: 20, size: 1000 },
        ]),
      );
      const started = Date.now();
      runner.child.kill('SIGTERM');
      const exit = await runner.exited;
      assert.is(exit.code, 0, `exit ${JSON.stringify(exit)}; output:\n${runner.output()}`);
      assert.ok(Date.now() - started < 10_000, 'teardown took too long');
      assert.match(runner.output(), /STOPPED/);
      await assertTornDown(ends);
      assert.ok(pidAlive(service.pid), 'the service itself is untouched');
    });
  });

  S('a link that dies tears the rest down and exits with the data-plane code', async () => {
    await withTestbed('plane-fault', async (bed) => {
      const ends = await tunnelEnds(bed);
      const runner = startRunner(bed, ends.home, planFor(ends));
      await runner.waitForOutput(/^READY/);
      const [daemon] = await pidsIn(ends.home, 'wireguard-go');
      assert.ok(daemon, 'wireguard-go runs in the home namespace');
      process.kill(daemon!, 'SIGKILL');
      const exit = await runner.exited;
      assert.is(exit.code, 7, runner.output());
      assert.match(runner.output(), /FAILED wireguard-go for .* exited unexpectedly/);
      await assertTornDown(ends);
    });
  });

  S('after a crash (SIGKILL) the daemon dies with its owner and the next run starts cleanly', async () => {
    await withTestbed('plane-crash', async (bed) => {
      const ends = await tunnelEnds(bed);
      const crashed = startRunner(bed, ends.home, planFor(ends));
      await crashed.waitForOutput(/^READY/);
      const [daemon] = await pidsIn(ends.home, 'wireguard-go');
      await crashed.stop('SIGKILL');
      await waitFor('the orphaned daemon to exit', () => (pidAlive(daemon!) ? undefined : true), 5_000);
      // The crashed run's policy rule is still there; the next run must neither fail on it nor duplicate it.
      assert.is(await rulesFor(ends.home), 1);
      const next = startRunner(bed, ends.home, planFor(ends));
      await next.waitForOutput(/^READY/);
      assert.is(await rulesFor(ends.home), 1);
      next.child.kill('SIGTERM');
      assert.is((await next.exited).code, 0, next.output());
      await assertTornDown(ends);
    });
  });
}

S.run();
