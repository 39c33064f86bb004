import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkTunnelHealth, describeProblems, hintFor, staleHandshakeSeconds } from '../../src/edge/edge-health.js';
import type { EdgeSession, ProbeResult, ProbeTarget } from '../../src/edge/edge-session.js';
import type { EdgeConfig, EdgeStatus } from '../../src/spec/edge-config.js';

const ports = Array.from({ length: 100 }, (_, i) => ({
  protocol: 'tcp' as const,
  publicPort: 10_000 + i,
  localPort: 10_000 + i,
  proxyProtocol: false,
}));
const edge = {
  ports,
  forwarding: 'nginx' as const,
  wireguard: {
    interface: 'ise-web',
    listenPort: 51820,
    address: '10.50.0.1/30',
    mtu: 1420,
    peer: { publicKey: 'k', address: '10.50.0.2' },
  },
} as unknown as Pick<EdgeConfig, 'ports' | 'forwarding' | 'wireguard'>;

function healthyStatus(): EdgeStatus {
  return {
    name: 'web',
    configHash: 'a'.repeat(64),
    wireguard: { interface: 'ise-web', publicKey: 'Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMDA=', up: true, peers: [] },
    forwarder: {
      kind: 'nginx',
      active: true,
      listening: ports.map((p) => ({ protocol: 'tcp' as const, port: p.publicPort })),
    },
  };
}

function session(
  status: () => EdgeStatus,
  probe: (t: ProbeTarget) => ProbeResult,
  probed: ProbeTarget[] = [],
): EdgeSession {
  return {
    target: { host: '198.51.100.7', port: 22, user: 'root', privateKeyPath: '/k', knownHostsPath: '/h' },
    status: async () => status(),
    runsNixos: async () => true,
    probeTcp: async () => true,
    probeTcpAll: async (targets) => {
      probed.push(...targets);
      return targets.map(probe);
    },
    repair: async () => ({ ok: true, detail: '' }),
    close: async () => {},
  };
}

const now = Date.parse('2026-11-22T00:00:00Z');
const input = {
  edge,
  tunnelPorts: [10_000, 10_001],
  latestHandshake: Math.floor(now / 1000) - 10,
  keepaliveSeconds: 25,
  nowMs: now,
};

const H = suite('edge health');

H('a healthy tunnel has no problems; only the asked public ports are probed', async () => {
  const probed: ProbeTarget[] = [];
  const problems = await checkTunnelHealth(
    session(healthyStatus, () => 'open', probed),
    { ...input, publicPorts: [10_050] },
  );
  assert.equal(problems, []);
  assert.equal(
    probed.map((t) => `${t.host}:${t.port}`),
    ['10.50.0.2:10000', '10.50.0.2:10001', '127.0.0.1:10050'],
  );
});

H("every planned listener is checked from the edge's report, not only the probed slice", async () => {
  const status = (): EdgeStatus => {
    const s = healthyStatus();
    return { ...s, forwarder: { ...s.forwarder, listening: s.forwarder.listening!.filter((l) => l.port !== 10_099) } };
  };
  const problems = await checkTunnelHealth(
    session(status, () => 'open'),
    { ...input, publicPorts: [10_000] },
  );
  assert.is(describeProblems(problems), 'nginx on the edge has not bound 10099/tcp');
});

H('WireGuard down and the forwarder stopped on the edge are named', async () => {
  const status = (): EdgeStatus => {
    const s = healthyStatus();
    return { ...s, wireguard: { ...s.wireguard, up: false }, forwarder: { ...s.forwarder, active: false } };
  };
  const problems = await checkTunnelHealth(
    session(status, () => 'open'),
    { ...input, publicPorts: [] },
  );
  assert.equal(
    problems.map((p) => p.component),
    ['edge-wireguard', 'forwarder'],
  );
  assert.match(
    describeProblems(problems),
    /WireGuard ise-web on the edge is down; the edge's forwarder \(nginx\) is not running/,
  );
});

H('through the tunnel: a reset proves the link, silence everywhere does not', async () => {
  const refused = await checkTunnelHealth(
    session(healthyStatus, (t) => (t.host === '10.50.0.2' ? 'refused' : 'open')),
    { ...input, publicPorts: [] },
  );
  assert.equal(refused, []);
  const silent = await checkTunnelHealth(
    session(healthyStatus, (t) => (t.host === '10.50.0.2' ? 'silent' : 'open')),
    { ...input, publicPorts: [] },
  );
  assert.equal(
    silent.map((p) => p.component),
    ['link'],
  );
});

H('a public port that refuses on the edge is a problem', async () => {
  const problems = await checkTunnelHealth(
    session(healthyStatus, (t) => (t.port === 10_003 && t.host === '127.0.0.1' ? 'refused' : 'open')),
    { ...input, publicPorts: [10_002, 10_003] },
  );
  assert.is(describeProblems(problems), 'public port 10003/tcp does not accept connections on the edge');
});

H('the handshake is stale past 120 s + 2 keepalives + slack (200 s with 25 s)', async () => {
  assert.is(staleHandshakeSeconds(25), 200);
  const fresh = await checkTunnelHealth(
    session(healthyStatus, () => 'open'),
    { ...input, latestHandshake: Math.floor(now / 1000) - 190 },
  );
  assert.equal(fresh, []);
  const stale = await checkTunnelHealth(
    session(healthyStatus, () => 'open'),
    { ...input, latestHandshake: Math.floor(now / 1000) - 250 },
  );
  assert.is(describeProblems(stale), 'no WireGuard handshake with the edge for 250 s');
});

H('an edge that does not answer: one problem, no probes', async () => {
  const probed: ProbeTarget[] = [];
  const broken = session(
    () => {
      throw new Error('the SSH connection closed');
    },
    () => 'open',
    probed,
  );
  const problems = await checkTunnelHealth(broken, input);
  assert.equal(
    problems.map((p) => p.component),
    ['edge'],
  );
  assert.equal(probed, []);
});

H('hints match the state left behind', () => {
  const link = [{ component: 'link' as const, detail: 'x' }];
  const removed = hintFor(link, { tunnel: 'web', edgeKept: false, wireguardPort: 51820 });
  assert.match(removed, /UDP 51820 reaches the edge/);
  assert.match(removed, /removed on exit; run up again for a new one/);
  assert.not.match(removed, /re-attach/);
  const kept = hintFor([{ component: 'forwarder', detail: 'x' }], {
    tunnel: 'web',
    edgeKept: true,
    wireguardPort: 51820,
  });
  assert.match(
    kept,
    new RegExp(
      /restarting the edge's services did not help; the edge was kept: .*innisfree ssh web -- /.source +
        /innisfree-edge-status, then run up again to re-attach/.source,
    ),
  );
});

H.run();
