// Kernel forwarding at home (nftables DNAT), run by a separate process in the home namespace as `up` runs it. The
// "internet" client is an address of the edge namespace that is not in the tunnel's subnet, and the edge sends its
// packets into the tunnel unchanged, as nftables forwarding on a real edge does. Services report the address they
// see: on 127.0.0.1 (TCP, UDP), bound to 0.0.0.0 (UDP replies), on a LAN host that routes via home, and on one that
// does not (with masquerade). SIGTERM leaves no table, rule, route or sysctl change; after SIGKILL the next run
// replaces the stale table and its own teardown leaves nothing either.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { HomeDataPlaneInput } from '../../src/home/data-plane.js';
import type { HomeConfig, HomeForward } from '../../src/plan.js';
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
import { EDGE_TUNNEL, EDGE_VETH, EDGE_WG_PORT, HOME_TUNNEL, type TunnelEnds, tunnelEnds } from '../helpers/tunnel.js';

const S = suite('home kernel forwarding (network namespaces)');
const skip = skipUnless(
  'home kernel forwarding tests',
  namespaceSkipReason,
  needsCommand('wg'),
  needsCommand('wireguard-go'),
  needsCommand('nft'),
  needsCommand('socat'),
);

/** The internet client: outside the tunnel's subnet, so only policy routing brings its replies back. */
const CLIENT = '100.64.0.9';
const PORT = 8080;
/** A UDP service bound to 0.0.0.0 (it answers from whatever source routing picks). */
const WILDCARD_PORT = 8081;
const TABLE = 20003;
const HOME_LAN = '198.18.0.1';
const LAN_HOST = '198.18.0.20';
/** Home's own way to the internet, which the tunnel's replies must not take. */
const HOME_UPLINK = '198.19.0.2';
const HOME_ROUTER = '198.19.0.1';

function forwardsTo(target: string, ports: Array<[HomeForward['protocol'], number]>): HomeForward[] {
  return ports.map(([protocol, port]) => ({
    protocol,
    listenAddress: HOME_TUNNEL,
    listenPort: port,
    targetHost: target,
    targetPort: port,
  }));
}

function planFor(
  ends: TunnelEnds,
  forwards: HomeForward[],
  options: { masquerade?: boolean } = {},
): HomeDataPlaneInput {
  const loopback = [...new Set(forwards.map((f) => f.targetHost).filter((t) => t.startsWith('127.')))];
  const home: HomeConfig = {
    name: 'web',
    interface: ends.homeInterface,
    address: `${HOME_TUNNEL}/30`,
    edgeAddress: EDGE_TUNNEL,
    edgeWireguardPort: EDGE_WG_PORT,
    persistentKeepalive: 25,
    mtu: 1420,
    allowedIps: ['0.0.0.0/0'],
    policyRouting: { table: TABLE, priority: 20000, from: [HOME_TUNNEL], fwmark: TABLE, localFrom: loopback },
    destination: forwards[0]!.targetHost,
    forwarding: 'kernel',
    masquerade: options.masquerade ?? false,
    forwards,
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

async function startService(bed: Testbed, ns: Namespace, host: string, port: number): Promise<void> {
  const service = bed.spawn(ns, process.execPath, [built('test/helpers/peer-service.ts'), host, String(port)]);
  await service.waitForOutput(/^READY/);
}

/**
 * The edge namespace with the client's address, and a tunnel that carries it. Home gets a default route of its
 * own, as a real home host has (its router): replies that policy routing missed would leave that way and be lost.
 */
async function internet(bed: Testbed): Promise<TunnelEnds> {
  const ends = await tunnelEnds(bed);
  await ends.edge.ip('addr', 'add', `${CLIENT}/32`, 'dev', 'lo');
  const router = await bed.namespace('isfr-');
  await bed.veth(ends.home, router, { a: `${HOME_UPLINK}/24`, b: `${HOME_ROUTER}/24` });
  await ends.home.ip('route', 'add', 'default', 'via', HOME_ROUTER);
  return ends;
}

/** What the service says it saw, asked from the client's address in the edge namespace. */
async function askFromClient(ends: TunnelEnds, protocol: 'tcp' | 'udp', port: number): Promise<string> {
  const address =
    `${protocol.toUpperCase()}:${HOME_TUNNEL}:${port},bind=${CLIENT}` +
    `${protocol === 'tcp' ? ',connect-timeout=3' : ''}`;
  const result = await ends.edge.run('socat', ['-T', '3', '-', address], {
    input: protocol === 'udp' ? 'who\n' : '',
    timeoutMs: 15_000,
  });
  return result.stdout.trim() || `(no answer; socat exit ${result.code}: ${result.stderr.trim()})`;
}

async function tablesIn(ns: Namespace): Promise<string[]> {
  const out = await ns.runOk('nft', ['list', 'tables']);
  return out.split('\n').filter((line) => line.includes('innisfree-home-'));
}

async function rulesInto(ns: Namespace): Promise<number> {
  const rules = JSON.parse(await ns.ip('-j', 'rule', 'show')) as Array<{ table?: string }>;
  return rules.filter((r) => r.table === String(TABLE)).length;
}

async function sysctl(ns: Namespace, key: string): Promise<string> {
  return (await ns.runOk('sysctl', ['-n', key])).trim();
}

/** No table, rule, route or sysctl change of the tunnel is left in the home namespace. */
async function assertClean(ends: TunnelEnds, before: Record<string, string>): Promise<void> {
  assert.equal(await tablesIn(ends.home), [], 'no nftables table left');
  assert.is(await rulesInto(ends.home), 0, 'no policy rule left');
  assert.is((await ends.home.ip('route', 'show', 'table', String(TABLE))).trim(), '', 'no route left in the table');
  assert.is((await ends.home.run('ip', ['link', 'show', 'dev', ends.homeInterface])).code === 0, false, 'link removed');
  for (const [key, value] of Object.entries(before)) assert.is(await sysctl(ends.home, key), value, `${key} as before`);
}

const GLOBAL_SYSCTLS = [
  'net.ipv4.conf.all.route_localnet',
  'net.ipv4.conf.default.route_localnet',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.ip_forward',
];

async function globalSysctls(ns: Namespace): Promise<Record<string, string>> {
  return Object.fromEntries(
    await Promise.all(GLOBAL_SYSCTLS.map(async (key) => [key, await sysctl(ns, key)] as const)),
  );
}

if (!skip) {
  S(
    'services on 127.0.0.1 see the client address (TCP, UDP); a 0.0.0.0 UDP service answers; SIGTERM leaves nothing',
    async () => {
      await withTestbed('kernel-local', async (bed) => {
        const ends = await internet(bed);
        const before = await globalSysctls(ends.home);
        await startService(bed, ends.home, '127.0.0.1', PORT);
        await startService(bed, ends.home, '0.0.0.0', WILDCARD_PORT);
        const runner = startRunner(
          bed,
          ends.home,
          planFor(
            ends,
            forwardsTo('127.0.0.1', [
              ['tcp', PORT],
              ['udp', PORT],
              ['udp', WILDCARD_PORT],
            ]),
          ),
        );
        await runner.waitForOutput(/^READY/);
        assert.is((await tablesIn(ends.home)).length, 1);
        assert.is(
          await sysctl(ends.home, `net.ipv4.conf.${ends.homeInterface}.route_localnet`),
          '1',
          'route_localnet on the tunnel interface',
        );
        assert.equal(await globalSysctls(ends.home), before, 'nothing global changed');

        assert.match(await askFromClient(ends, 'tcp', PORT), new RegExp(`^PEER ${CLIENT}:\\d+$`));
        assert.match(await askFromClient(ends, 'udp', PORT), new RegExp(`^PEER ${CLIENT}:\\d+$`));
        assert.match(
          await askFromClient(ends, 'udp', WILDCARD_PORT),
          new RegExp(`^PEER ${CLIENT}:\\d+$`),
          "the 0.0.0.0 service's reply arrived",
        );

        const counters = JSON.parse(await ends.home.runOk('nft', ['-j', 'list', 'counters'])) as {
          nftables: Array<{ counter?: { name: string; packets: number } }>;
        };
        const packets = (name: string) =>
          counters.nftables.find((e) => e.counter?.name === name)?.counter?.packets ?? 0;
        assert.is(packets(`tcp-${PORT}-new`), 1, 'one TCP connection counted');
        assert.ok(packets(`udp-${WILDCARD_PORT}-out`) >= 1, 'the wildcard reply left through the tunnel');

        runner.child.kill('SIGTERM');
        const exit = await runner.exited;
        assert.is(exit.code, 0, runner.output());
        await assertClean(ends, before);
      });
    },
  );

  S('after SIGKILL the next run replaces the stale table, works, and its teardown leaves nothing', async () => {
    await withTestbed('kernel-crash', async (bed) => {
      const ends = await internet(bed);
      const before = await globalSysctls(ends.home);
      await startService(bed, ends.home, '127.0.0.1', PORT);
      const input = planFor(
        ends,
        forwardsTo('127.0.0.1', [
          ['tcp', PORT],
          ['udp', PORT],
        ]),
      );
      const crashed = startRunner(bed, ends.home, input);
      await crashed.waitForOutput(/^READY/);
      const [daemon] = await pidsIn(ends.home, 'wireguard-go');
      await crashed.stop('SIGKILL');
      await waitFor('the orphaned daemon to exit', () => (pidAlive(daemon!) ? undefined : true), 5_000);
      assert.is((await tablesIn(ends.home)).length, 1, "the crashed run's table is still there");
      assert.ok((await rulesInto(ends.home)) > 0, 'and its rules');

      const next = startRunner(bed, ends.home, input);
      await next.waitForOutput(/^READY/);
      assert.is((await tablesIn(ends.home)).length, 1, 'replaced, not duplicated');
      assert.is(await rulesInto(ends.home), 3, 'source, fwmark and loopback rules, once each');
      assert.match(await askFromClient(ends, 'tcp', PORT), new RegExp(`^PEER ${CLIENT}:\\d+$`));
      next.child.kill('SIGTERM');
      assert.is((await next.exited).code, 0, next.output());
      await assertClean(ends, before);
    });
  });

  S('a LAN host that routes via home sees the client; one that does not answers with --masquerade', async () => {
    await withTestbed('kernel-lan', async (bed) => {
      const ends = await internet(bed);
      const lan = await bed.namespace('isfl-');
      const link = await bed.veth(ends.home, lan, { a: `${HOME_LAN}/24`, b: `${LAN_HOST}/24` });
      await startService(bed, lan, LAN_HOST, PORT);
      const forwards = forwardsTo(LAN_HOST, [
        ['tcp', PORT],
        ['udp', PORT],
      ]);

      // The way to the LAN host must forward: refused with a clear line while it does not.
      const refused = startRunner(bed, ends.home, planFor(ends, forwards));
      const exit = await refused.exited;
      assert.is(exit.code, 9, refused.output());
      assert.match(
        refused.output(),
        new RegExp(`FAILED kernel forwarding to ${LAN_HOST} needs IPv4 forwarding on ${link.a}, which is off`),
      );
      assert.equal(await tablesIn(ends.home), [], 'nothing loaded');

      // This host is the LAN host's router: it forwards there, and the LAN host routes via it.
      await ends.home.runOk('sysctl', ['-q', '-w', `net.ipv4.conf.${link.a}.forwarding=1`]);
      await lan.ip('route', 'add', 'default', 'via', HOME_LAN);
      const routed = startRunner(bed, ends.home, planFor(ends, forwards));
      await routed.waitForOutput(/^READY/);
      assert.is(
        await sysctl(ends.home, `net.ipv4.conf.${ends.homeInterface}.forwarding`),
        '1',
        'forwarding on the tunnel interface',
      );
      assert.match(await askFromClient(ends, 'tcp', PORT), new RegExp(`^PEER ${CLIENT}:\\d+$`));
      assert.match(await askFromClient(ends, 'udp', PORT), new RegExp(`^PEER ${CLIENT}:\\d+$`));
      routed.child.kill('SIGTERM');
      assert.is((await routed.exited).code, 0, routed.output());

      // Without a route back, the LAN host's replies go nowhere; masquerading makes them come back to this host.
      await lan.ip('route', 'del', 'default', 'via', HOME_LAN);
      const unrouted = startRunner(bed, ends.home, planFor(ends, forwards));
      await unrouted.waitForOutput(/^READY/);
      assert.match(
        await askFromClient(ends, 'tcp', PORT),
        /^\(no answer/,
        'no route back: no answer (the test can fail)',
      );
      unrouted.child.kill('SIGTERM');
      assert.is((await unrouted.exited).code, 0, unrouted.output());

      const masqueraded = startRunner(bed, ends.home, planFor(ends, forwards, { masquerade: true }));
      await masqueraded.waitForOutput(/^READY/);
      assert.match(
        await askFromClient(ends, 'tcp', PORT),
        new RegExp(`^PEER ${HOME_LAN.replace(/\./g, '\\.')}:\\d+$`),
        'the LAN host sees this host',
      );
      assert.match(await askFromClient(ends, 'udp', PORT), new RegExp(`^PEER ${HOME_LAN.replace(/\./g, '\\.')}:\\d+$`));
      masqueraded.child.kill('SIGTERM');
      assert.is((await masqueraded.exited).code, 0, masqueraded.output());
      assert.equal(await tablesIn(ends.home), []);
      assert.is(await rulesInto(ends.home), 0);
    });
  });
}

S.run();
