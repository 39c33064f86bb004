// Per-port destinations end to end: `--ports 8080/tcp@A,8080/udp@A,8081/tcp@B,8081/udp@B` resolved and planned as
// `up` does (resolveTunnelSpec → plan), and the home side that plan describes run in the home namespace. A and B
// are two LAN hosts in namespaces of their own, each on its own link from home; each runs its service on one port
// only, so a port that reached the wrong host gets no answer. The services report the address they see: with
// kernel forwarding (both hosts route via home) the internet client's, with the userspace forwarder this host's
// address on that host's own link, which also proves which link the connection took.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { HomeDataPlaneInput } from '../../src/home/data-plane.js';
import { plan } from '../../src/plan.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { built } from '../helpers/cli.js';
import {
  type Namespace,
  type Testbed,
  namespaceSkipReason,
  needsCommand,
  skipUnless,
  withTestbed,
} from '../helpers/netns.js';
import { EDGE_TUNNEL, EDGE_VETH, EDGE_WG_PORT, HOME_TUNNEL, type TunnelEnds, tunnelEnds } from '../helpers/tunnel.js';

const S = suite('per-port destinations (network namespaces)');
const skip = skipUnless(
  'per-port destination tests',
  namespaceSkipReason,
  needsCommand('wg'),
  needsCommand('wireguard-go'),
  needsCommand('nft'),
  needsCommand('socat'),
);

/** The internet client: outside the tunnel's subnet, so only policy routing brings its replies back. */
const CLIENT = '100.64.0.9';
const PORT_A = 8080;
const PORT_B = 8081;
const HOME_ON_A = '198.18.0.1';
const HOST_A = '198.18.0.20';
const HOME_ON_B = '198.18.1.1';
const HOST_B = '198.18.1.20';

/** The home side of `up --forwarding nftables --ports …@A,…@B --home-forwarding MODE`, as plan() makes it. */
function homeInputFor(ends: TunnelEnds, mode: 'kernel' | 'proxy'): HomeDataPlaneInput {
  const ports = `${PORT_A}/tcp@${HOST_A},${PORT_A}/udp@${HOST_A},${PORT_B}/tcp@${HOST_B},${PORT_B}/udp@${HOST_B}`;
  const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports, forwarding: 'nftables', homeForwarding: mode })]);
  const { home } = plan({
    spec,
    allocation: {
      index: 4,
      pool: '10.50.0.0/16',
      interface: ends.homeInterface,
      edgeInterface: 'ise-web',
      homeAddress: `${HOME_TUNNEL}/30`,
      edgeAddress: `${EDGE_TUNNEL}/30`,
    },
    keys: { homeWireguardPublicKey: ends.edgePublicKey, sshPublicKey: 'ssh-ed25519 AAAA test' },
    homeHost: { kernelForwarding: true, localAddresses: [] },
  });
  assert.is(home.forwarding, mode);
  assert.equal(
    home.forwards.map((f) => `${f.protocol}/${f.listenPort}->${f.targetHost}`),
    [`tcp/${PORT_A}->${HOST_A}`, `tcp/${PORT_B}->${HOST_B}`, `udp/${PORT_A}->${HOST_A}`, `udp/${PORT_B}->${HOST_B}`],
  );
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

const peer = (address: string): RegExp => new RegExp(`^PEER ${address.replace(/\./g, '\\.')}:\\d+$`);

/** The tunnel, the client's address on the edge, and two LAN hosts on links of their own that route via home. */
async function bedWithTwoHosts(bed: Testbed): Promise<TunnelEnds> {
  const ends = await tunnelEnds(bed);
  await ends.edge.ip('addr', 'add', `${CLIENT}/32`, 'dev', 'lo');
  for (const [home, host, port] of [
    [HOME_ON_A, HOST_A, PORT_A],
    [HOME_ON_B, HOST_B, PORT_B],
  ] as const) {
    const lan = await bed.namespace('isfl-');
    const link = await bed.veth(ends.home, lan, { a: `${home}/24`, b: `${host}/24` });
    // Home is these hosts' router: it forwards to them, and their replies come back through it.
    await ends.home.runOk('sysctl', ['-q', '-w', `net.ipv4.conf.${link.a}.forwarding=1`]);
    await lan.ip('route', 'add', 'default', 'via', home);
    await startService(bed, lan, host, port);
  }
  return ends;
}

if (!skip) {
  S('kernel forwarding: each port reaches its own host (TCP and UDP), which sees the client address', async () => {
    await withTestbed('ports-kernel', async (bed) => {
      const ends = await bedWithTwoHosts(bed);
      const runner = startRunner(bed, ends.home, homeInputFor(ends, 'kernel'));
      await runner.waitForOutput(/^READY/);
      const dnat = await ends.home.runOk('nft', [
        'list',
        'map',
        'inet',
        `innisfree-home-${ends.homeInterface}`,
        'tcp-dnat',
      ]);
      assert.match(
        dnat,
        new RegExp(`${PORT_A} : ${HOST_A.replace(/\./g, '\\.')} \\. ${PORT_A}`),
        'a DNAT target per port',
      );
      assert.match(dnat, new RegExp(`${PORT_B} : ${HOST_B.replace(/\./g, '\\.')} \\. ${PORT_B}`));
      for (const protocol of ['tcp', 'udp'] as const) {
        assert.match(await askFromClient(ends, protocol, PORT_A), peer(CLIENT), `${protocol}/${PORT_A} at host A`);
        assert.match(await askFromClient(ends, protocol, PORT_B), peer(CLIENT), `${protocol}/${PORT_B} at host B`);
      }
      runner.child.kill('SIGTERM');
      assert.is((await runner.exited).code, 0, runner.output());
    });
  });

  S("the userspace forwarder: each port reaches its own host (TCP and UDP) over that host's link", async () => {
    await withTestbed('ports-proxy', async (bed) => {
      const ends = await bedWithTwoHosts(bed);
      const runner = startRunner(bed, ends.home, homeInputFor(ends, 'proxy'));
      await runner.waitForOutput(/^READY/);
      for (const protocol of ['tcp', 'udp'] as const) {
        assert.match(
          await askFromClient(ends, protocol, PORT_A),
          peer(HOME_ON_A),
          `${protocol}/${PORT_A} at host A, from this host's address there`,
        );
        assert.match(
          await askFromClient(ends, protocol, PORT_B),
          peer(HOME_ON_B),
          `${protocol}/${PORT_B} at host B, from this host's address there`,
        );
      }
      runner.child.kill('SIGTERM');
      assert.is((await runner.exited).code, 0, runner.output());
    });
  });
}

S.run();
