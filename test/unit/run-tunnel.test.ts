import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import type { DeployRequest } from '../../src/edge/deployer-port.js';
import type { DeployedConfig } from '../../src/edge/deployed-config.js';
import { DataPlaneError, DeployError, InterruptedError, RolledBackError, SshError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import { plan as makePlan } from '../../src/plan.js';
import type { EdgeInfo, Provider } from '../../src/providers/provider.js';
import type { EdgeSession, ProbeResult, RepairResult } from '../../src/edge/edge-session.js';
import type { HomeDataPlane } from '../../src/home/data-plane.js';
import type { RunTunnelTiming, TunnelDeps } from '../../src/run-tunnel-context.js';
import { runTunnel } from '../../src/run-tunnel.js';
import type { EdgeStatus } from '../../src/spec/edge-config.js';
import { fileLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { ReloadRequests } from '../../src/lib/reload-requests.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { readPlanFixture } from '../helpers/fixtures.js';
import { makeTempDir } from '../helpers/tmp.js';

// The watch is off here (watchIntervalMs 0); its own suite below turns it on.
const timing: RunTunnelTiming = {
  handshakeTimeoutMs: 10_000,
  sampleIntervalMs: 1_000,
  lostAfterMs: 60_000,
  watchIntervalMs: 0,
  repairSettleMs: 0,
};
const EDGE_KEY = 'Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMDA=';

interface World {
  log: string[];
  events: ProgressEvent[];
  edges: Map<string, EdgeInfo>;
  edgeConfigHash: string | null;
  deploy: (request: DeployRequest) => Promise<{ configHash: string }>;
  handshake: () => number;
  connectFails?: boolean;
  dataPlaneFault?: Promise<never>;
  probe: (host: string, port: number) => boolean;
  previousConfig?: DeployedConfig;
  /** Runs inside startDataPlane, before it returns (a signal arriving while the home side comes up). */
  onDataPlaneStart?: () => void;
  probeLocal?: (host: string, port: number) => boolean;
  /** The watch's view: what a probe from the edge sees, what the edge reports, what a repair does. */
  probeResult?: (host: string, port: number) => ProbeResult | undefined;
  statusOverride?: (status: EdgeStatus) => EdgeStatus;
  repair?: () => RepairResult;
  onRenewLink?: () => void;
  watchTiming?: Partial<RunTunnelTiming>;
  /** The SSH session fails every command until the watch reconnects. */
  sshDown?: boolean;
  reconnectFails?: boolean;
  /** Logging in again fails until this clock time (ms): an edge that reboots. */
  reconnectFailsUntil?: number;
}

function setup(overrides: { keep?: boolean; tunnel?: Record<string, unknown> } = {}) {
  const dir = makeTempDir();
  const { input } = readPlanFixture('web-basic');
  const spec = resolveTunnelSpec([
    fileLayer('t.json', { ...input.tunnel, keep: overrides.keep ?? false, ...overrides.tunnel }),
  ]);
  const plan = makePlan({ spec, allocation: input.allocation, keys: input.keys });
  const paths = tunnelPaths(dir.path, spec.name);
  const clock = new FakeClock();
  let controller = new AbortController();
  const world: World = {
    log: [],
    events: [],
    edges: new Map(),
    edgeConfigHash: null,
    deploy: async (request) => {
      world.edgeConfigHash = request.configHash;
      return { configHash: request.configHash };
    },
    handshake: () => Math.floor(clock.now() / 1000),
    probe: () => true,
  };
  const edgeStatus = (): EdgeStatus | undefined =>
    world.edgeConfigHash === null
      ? undefined
      : {
          name: spec.name,
          configHash: world.edgeConfigHash,
          wireguard: { interface: plan.edge.wireguard.interface, publicKey: EDGE_KEY, up: true, peers: [] },
          forwarder: { kind: 'nginx', active: true },
        };
  const provider: Provider = {
    name: 'local',
    ensureEdge: async () => {
      const existing = world.edges.get(spec.name);
      if (existing) return { edge: existing, created: false };
      const edge: EdgeInfo = {
        provider: 'local',
        id: 'edge-1',
        name: `innisfree-${spec.name}`,
        tunnel: spec.name,
        ipv4: '198.51.100.7',
        region: 'local',
        size: 'local',
        status: 'running',
        createdAt: new Date(clock.now()).toISOString(),
      };
      world.edges.set(spec.name, edge);
      world.log.push('edge.create');
      return { edge, created: true };
    },
    findEdge: async (name) => world.edges.get(name),
    listEdges: async () => [...world.edges.values()],
    destroyEdge: async (name) => {
      world.log.push('edge.destroy');
      world.edges.delete(name);
    },
  };
  const connection: EdgeSession = {
    target: {
      host: '198.51.100.7',
      port: 22,
      user: 'root',
      privateKeyPath: paths.sshPrivate,
      knownHostsPath: paths.knownHosts,
    },
    status: async () => {
      if (world.sshDown) throw new SshError('the SSH connection to 198.51.100.7:22 closed');
      const current = edgeStatus();
      return current && world.statusOverride ? world.statusOverride(current) : current;
    },
    runsNixos: async () => true,
    probeTcp: async (host, port) => world.probe(host, port),
    probeTcpAll: async (targets) =>
      targets.map((t) => world.probeResult?.(t.host, t.port) ?? (world.probe(t.host, t.port) ? 'open' : 'refused')),
    repair: async () => {
      world.log.push('edge.repair');
      return world.repair?.() ?? { ok: true, detail: 'restarted nginx and wireguard' };
    },
    close: async () => {
      world.log.push('ssh.close');
    },
  };
  let dataPlaneUp = false;
  const deps: TunnelDeps = {
    provider,
    deployer: { apply: (request) => world.deploy(request) },
    reachEdge: async () => {
      if (world.connectFails) throw new SshError('edge unreachable');
      world.log.push('ssh.connect');
      return connection;
    },
    writeEdgeFiles: async () => {
      world.log.push('files.write');
    },
    restoreEdgeFiles: async () => {
      world.log.push('files.restore');
      return world.previousConfig;
    },
    startDataPlane: async (_home, peer) => {
      world.log.push(`dataplane.up ${peer.endpoint} ${peer.publicKey.slice(0, 6)}`);
      dataPlaneUp = true;
      world.onDataPlaneStart?.();
      const plane: HomeDataPlane = {
        // The link and forwarder themselves are the e2e tests' business; runTunnel only samples, watches and stops.
        link: {} as HomeDataPlane['link'],
        forwarder: undefined,
        kernel: undefined,
        sample: async () => ({
          sampledAt: new Date(clock.now()).toISOString(),
          interface: plan.home.interface,
          latestHandshake: world.handshake(),
          rxBytes: 1,
          txBytes: 2,
          endpoint: peer.endpoint,
          ports: [],
        }),
        setEndpoint: async () => {},
        renewLink: async () => {
          world.log.push('link.renew');
          world.onRenewLink?.();
        },
        updateForwards: async (home) => {
          world.log.push(`dataplane.forwards ${home.forwards.map((f) => f.listenPort).join(',')}`);
        },
        failure: world.dataPlaneFault ?? new Promise<never>(() => {}),
        stop: async () => {
          world.log.push('dataplane.down');
          dataPlaneUp = false;
        },
      };
      return plane;
    },
    probeLocal: async (host, port) => world.probeLocal?.(host, port) ?? true,
    reconnectEdge: async () => {
      if (world.reconnectFails || clock.now() < (world.reconnectFailsUntil ?? 0))
        throw new SshError('edge unreachable');
      world.log.push('ssh.reconnect');
      world.sshDown = false;
      return connection;
    },
  };
  const ready: unknown[] = [];
  const reloads = new ReloadRequests();
  let replanned: { spec: typeof spec; plan: typeof plan } | undefined;
  /** Each run gets a fresh signal, as each `innisfree up` process does. */
  const run = () => {
    controller = new AbortController();
    const ctx = { clock, emit: (e: ProgressEvent) => world.events.push(e), signal: controller.signal };
    return runTunnel(
      ctx,
      deps,
      {
        spec,
        plan,
        paths,
        identity: { sshPublicKey: input.keys.sshPublicKey, hostKey: { privateKey: 'x', publicKey: 'y' } },
        onReady: (info) => {
          ready.push(info);
          world.log.push('ready');
        },
        reloads,
        replan: async () => replanned ?? { spec, plan },
      },
      { ...timing, ...world.watchTiming },
    );
  };
  const status = () =>
    JSON.parse(readFileSync(paths.status, 'utf8')) as {
      phase: string;
      edge: EdgeInfo | null;
      message: string | null;
      deployedConfigHash: string | null;
      plannedConfigHash: string;
    };
  const abort = (reason: unknown = new InterruptedError('interrupted by SIGTERM')) => controller.abort(reason);
  const reloadWith = (tunnel: Record<string, unknown>) => {
    const next = resolveTunnelSpec([
      fileLayer('t.json', { ...input.tunnel, keep: overrides.keep ?? false, ...overrides.tunnel, ...tunnel }),
    ]);
    replanned = { spec: next, plan: makePlan({ spec: next, allocation: input.allocation, keys: input.keys }) };
    reloads.request();
    return replanned.plan;
  };
  return { dir, world, run, abort, plan, status, ready, isDataPlaneUp: () => dataPlaneUp, clock, reloadWith };
}

async function untilReady(t: ReturnType<typeof setup>): Promise<void> {
  for (let i = 0; i < 2000 && t.ready.length === 0; i++) await new Promise((r) => setTimeout(r, 1));
  assert.is(t.ready.length, 1, 'the tunnel became ready');
}

// ---
const R = suite('runTunnel');

R('creates, deploys, verifies, serves, and on a signal tears down in order', async () => {
  const t = setup();
  try {
    const running = t.run();
    await untilReady(t);
    assert.is(t.status().phase, 'ready');
    assert.is(t.status().deployedConfigHash, t.plan.configHash);
    t.abort();
    await running;
    assert.equal(t.world.log, [
      'edge.create',
      'files.write',
      'ssh.connect',
      `dataplane.up 198.51.100.7:51820 ${EDGE_KEY.slice(0, 6)}`,
      'ready',
      'ssh.close',
      'dataplane.down',
      'edge.destroy',
    ]);
    assert.is(t.status().phase, 'stopped');
    assert.is(t.status().edge, null);
  } finally {
    t.dir.remove();
  }
});

R(
  'a reload request while serving: the new plan is deployed, the home side updated, status records it; up keeps ' +
    'serving',
  async () => {
    const t = setup();
    try {
      const running = t.run();
      await untilReady(t);
      const next = t.reloadWith({ ports: '443/tcp,80:8080/tcp,19132/udp,8443/tcp' });
      let last: { outcome?: string; added?: string[] } | undefined;
      for (let i = 0; i < 2000 && !last; i++) {
        await new Promise((r) => setTimeout(r, 1));
        last = (t.status() as { lastReload?: typeof last }).lastReload ?? undefined;
      }
      assert.is(last?.outcome, 'reloaded');
      assert.equal(last?.added, ['8443/tcp']);
      assert.is(t.status().deployedConfigHash, next.configHash);
      assert.is(t.status().plannedConfigHash, next.configHash);
      assert.is(t.status().phase, 'ready');
      assert.ok(
        t.world.log.some((l) => l.startsWith('dataplane.forwards') && l.includes('8443')),
        t.world.log.join(' | '),
      );
      const reloadEvents = t.world.events.filter((e) => e.type === 'reload');
      assert.equal(
        reloadEvents.map((e) => e.type === 'reload' && e.status),
        ['reloaded'],
      );
      t.abort();
      await running;
      assert.is(t.status().phase, 'stopped');
    } finally {
      t.dir.remove();
    }
  },
);

R('--keep leaves the edge; the next run re-attaches and skips an unchanged deploy', async () => {
  const t = setup({ keep: true });
  try {
    let running = t.run();
    await untilReady(t);
    t.abort();
    await running;
    assert.not.ok(t.world.log.includes('edge.destroy'));
    assert.is(t.status().edge?.id, 'edge-1', 'status keeps the kept edge');
    let deploys = 0;
    const inner = t.world.deploy;
    t.world.deploy = async (r) => {
      deploys++;
      return inner(r);
    };
    t.ready.length = 0;
    running = t.run();
    await untilReady(t);
    t.abort();
    await running;
    assert.is(deploys, 0, 'the edge already runs this config');
    assert.ok(t.world.events.some((e) => e.type === 'step' && e.id === 'deploy' && e.status === 'skipped'));
    assert.is(t.world.log.filter((l) => l === 'edge.create').length, 1, 'one edge, not two');
  } finally {
    t.dir.remove();
  }
});

R('a rolled-back deploy on an existing edge keeps the edge and the previous files', async () => {
  const t = setup();
  try {
    t.world.edges.set('web', {
      provider: 'local',
      id: 'edge-0',
      name: 'innisfree-web',
      tunnel: 'web',
      ipv4: '198.51.100.9',
      region: 'local',
      size: 'local',
      status: 'running',
      createdAt: '',
    });
    t.world.edgeConfigHash = 'old';
    t.world.deploy = async () => {
      throw new RolledBackError('deploy rolled back');
    };
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RolledBackError);
    }
    assert.ok(t.world.log.includes('files.restore'));
    assert.not.ok(t.world.log.includes('edge.destroy'), 'the edge still serves its previous config');
    assert.is(t.status().phase, 'failed');
    assert.match(t.status().message ?? '', /rolled back/);
    assert.is(t.status().deployedConfigHash, 'old');
  } finally {
    t.dir.remove();
  }
});

R(
  'a rollback on an edge that never had a configuration is a failed deploy (5), not "the previous one still serves"',
  async () => {
    const t = setup();
    try {
      t.world.deploy = async () => {
        throw new RolledBackError(
          'the local edge of "web" rolled back: nginx: bind() failed; the previous configuration is still serving',
        );
      };
      try {
        await t.run();
        assert.unreachable();
      } catch (error) {
        assert.instance(error, DeployError);
        assert.is((error as DeployError).exitCode, 5);
        assert.not.match((error as Error).message, /previous configuration is still serving/);
        assert.match(
          (error as Error).message,
          /bind\(\) failed; the edge had no earlier configuration, so nothing serves its ports/,
        );
      }
      assert.ok(t.world.log.includes('edge.destroy'), 'the edge made for it is removed');
      assert.not.match(t.status().message ?? '', /still serving/);
    } finally {
      t.dir.remove();
    }
  },
);

R('after a rollback with a known previous config, up serves that config and ends as rolled back', async () => {
  const t = setup();
  try {
    t.world.edges.set('web', {
      provider: 'local',
      id: 'edge-0',
      name: 'innisfree-web',
      tunnel: 'web',
      ipv4: '198.51.100.9',
      region: 'local',
      size: 'local',
      status: 'running',
      createdAt: '',
    });
    t.world.edgeConfigHash = 'old';
    const previousHome = { ...t.plan.home, forwards: t.plan.home.forwards.slice(0, 1) };
    t.world.previousConfig = { edge: { ...t.plan.edge, ports: t.plan.edge.ports.slice(0, 1) }, home: previousHome };
    const probed: string[] = [];
    t.world.probe = (host, port) => {
      probed.push(`${host}:${port}`);
      return true;
    };
    t.world.deploy = async () => {
      throw new RolledBackError('deploy rolled back; the previous configuration is still serving');
    };
    const running = t.run();
    running.catch(() => {});
    try {
      await untilReady(t);
    } catch (error) {
      t.abort();
      await running.catch(() => {});
      throw error;
    }
    assert.is((t.ready[0] as { served: DeployedConfig }).served.home, previousHome, 'the previous home side runs');
    const previousPort = t.world.previousConfig.edge.ports[0]!;
    assert.equal(
      probed,
      [`10.50.0.2:${previousPort.localPort}`, `127.0.0.1:${previousPort.publicPort}`],
      'verified against the previous config',
    );
    assert.is(t.status().phase, 'ready');
    assert.match(t.status().message ?? '', /rolled back/);
    assert.is(t.status().deployedConfigHash, 'old');
    t.abort();
    try {
      await running;
      assert.unreachable();
    } catch (error) {
      assert.instance(error, RolledBackError);
      assert.is((error as RolledBackError).exitCode, 6);
    }
    assert.ok(t.world.log.includes('dataplane.down'));
  } finally {
    t.dir.remove();
  }
});

R('a failure after creating the edge destroys it (no orphan)', async () => {
  const t = setup();
  try {
    t.world.connectFails = true;
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, SshError);
    }
    assert.equal(t.world.log, ['edge.create', 'files.write', 'edge.destroy']);
    assert.is(t.world.edges.size, 0);
    assert.is(t.status().phase, 'failed');
  } finally {
    t.dir.remove();
  }
});

R('a signal during setup tears down and reports an interruption', async () => {
  const t = setup();
  try {
    t.world.deploy = async (request) => {
      t.abort(new InterruptedError('interrupted by SIGINT'));
      throw request.signal.reason;
    };
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, InterruptedError);
      assert.is((error as InterruptedError).exitCode, 130);
    }
    assert.ok(t.world.log.includes('edge.destroy'));
    assert.is(t.status().phase, 'stopped');
  } finally {
    t.dir.remove();
  }
});

// A signal that arrives while a step runs must stop the run as soon as that step returns: never "is up" after it.
for (const [phase, arrange] of [
  [
    'while the home side comes up',
    (t: ReturnType<typeof setup>) =>
      (t.world.onDataPlaneStart = () => t.abort(new InterruptedError('interrupted by SIGINT'))),
  ],
  [
    'during verification',
    (t: ReturnType<typeof setup>) => {
      t.world.probe = () => {
        t.abort(new InterruptedError('interrupted by SIGINT'));
        return true;
      };
    },
  ],
  [
    'during the destination checks',
    (t: ReturnType<typeof setup>) => {
      t.world.probeLocal = () => {
        t.abort(new InterruptedError('interrupted by SIGTERM'));
        return true;
      };
    },
  ],
] as const) {
  R(`a signal ${phase} stops at once with 130 and the tunnel never reports ready`, async () => {
    const t = setup();
    try {
      arrange(t);
      try {
        await t.run();
        assert.unreachable('the run ended normally');
      } catch (error) {
        assert.instance(error, InterruptedError);
        assert.is((error as InterruptedError).exitCode, 130);
      }
      assert.is(t.ready.length, 0, 'onReady was not called');
      assert.not.ok(t.world.log.includes('ready'));
      assert.ok(t.world.log.includes('dataplane.down'), 'the home side was stopped');
      assert.ok(t.world.log.includes('edge.destroy'), 'the edge made by this run was destroyed');
      assert.is(t.status().phase, 'stopped');
    } finally {
      t.dir.remove();
    }
  });
}

R('a fatal data-plane fault while serving tears down with exit code 7', async () => {
  const t = setup();
  try {
    let fail: (e: Error) => void = () => {};
    t.world.dataPlaneFault = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const running = t.run();
    await untilReady(t);
    fail(new DataPlaneError('listener on 10.50.0.2:443 failed'));
    try {
      await running;
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DataPlaneError);
      assert.is((error as DataPlaneError).exitCode, 7);
    }
    assert.ok(t.world.log.includes('dataplane.down'));
    assert.ok(t.world.log.includes('edge.destroy'));
    assert.not.ok(t.isDataPlaneUp());
  } finally {
    t.dir.remove();
  }
});

R('no handshake within the timeout is a data-plane error', async () => {
  const t = setup();
  try {
    t.world.handshake = () => 0;
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DataPlaneError);
      assert.match((error as Error).message, /no WireGuard handshake/);
    }
    assert.ok(t.world.log.includes('dataplane.down'));
  } finally {
    t.dir.remove();
  }
});

R('a port the edge cannot reach through the tunnel fails verification', async () => {
  const t = setup();
  try {
    t.world.probe = (host, port) => !(host === t.plan.edge.wireguard.peer.address && port === 8080);
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DataPlaneError);
      assert.match((error as Error).message, /10\.50\.0\.2:8080 through the tunnel/);
    }
  } finally {
    t.dir.remove();
  }
});

R(
  'a destination that is down: a reset through the tunnel still proves the path; with the destination up it does not',
  async () => {
    for (const destinationUp of [false, true]) {
      const t = setup();
      try {
        t.world.probeLocal = () => destinationUp;
        t.world.probe = (host) => host !== t.plan.edge.wireguard.peer.address;
        const running = t.run();
        if (destinationUp) {
          try {
            await running;
            assert.unreachable();
          } catch (error) {
            assert.instance(error, DataPlaneError);
            assert.match((error as Error).message, /through the tunnel \(refused\)/);
          }
        } else {
          await untilReady(t);
          t.abort();
          await running;
        }
      } finally {
        t.dir.remove();
      }
    }
  },
);

R('a tunnel without handshakes for too long is lost', async () => {
  const t = setup();
  try {
    const start = t.clock.now();
    t.world.handshake = () => Math.floor(start / 1000);
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.instance(error, DataPlaneError);
      assert.match((error as Error).message, /tunnel lost/);
    }
  } finally {
    t.dir.remove();
  }
});

R.run();

// ---
const W = suite('runTunnel: the watch of a ready tunnel');
const watching: Partial<RunTunnelTiming> = { watchIntervalMs: 2_000, repairSettleMs: 10_000 };

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 5000 && !condition(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(condition(), what);
}

function healthEvents(t: ReturnType<typeof setup>) {
  return t.world.events.filter((e): e is Extract<ProgressEvent, { type: 'health' }> => e.type === 'health');
}

W('a dead edge forwarder: degraded (event and status), repaired on the edge, ready again', async () => {
  const t = setup();
  try {
    t.world.watchTiming = watching;
    let forwarderUp = true;
    t.world.statusOverride = (s) => ({ ...s, forwarder: { ...s.forwarder, active: forwarderUp } });
    t.world.probeResult = (host) => (host === '127.0.0.1' && !forwarderUp ? 'refused' : undefined);
    const phaseDuringRepair: string[] = [];
    t.world.repair = () => {
      phaseDuringRepair.push(t.status().phase);
      forwarderUp = true;
      return { ok: true, detail: 'restarted nginx' };
    };
    // What status.json says at the moment each health event is announced: a reader who saw the event trusts it.
    const phaseAtEvent: string[] = [];
    const push = t.world.events.push.bind(t.world.events);
    t.world.events.push = (...events: ProgressEvent[]) => {
      for (const event of events) if (event.type === 'health') phaseAtEvent.push(`${event.status}:${t.status().phase}`);
      return push(...events);
    };
    const running = t.run();
    await untilReady(t);
    forwarderUp = false;
    await until(() => healthEvents(t).some((e) => e.status === 'repaired'), 'the watch repaired the tunnel');
    assert.equal(
      phaseAtEvent.filter((p) => !p.startsWith('repairing')),
      ['degraded:degraded', 'repaired:ready'],
    );
    const [degraded] = healthEvents(t);
    assert.is(degraded?.status, 'degraded');
    assert.ok(
      degraded!.problems.some((p) => /forwarder \(nginx\) is not running/.test(p)),
      JSON.stringify(degraded),
    );
    assert.equal(phaseDuringRepair, ['degraded'], 'status.json said degraded while repairing');
    assert.ok(t.world.log.includes('edge.repair'));
    await until(() => t.status().phase === 'ready', 'ready again');
    assert.is(t.status().message, null);
    t.abort();
    await running;
  } finally {
    t.dir.remove();
  }
});

for (const keep of [false, true]) {
  W(
    `a repair that does not help exits 7 with a hint for the state left (` +
      `${keep ? 'kept edge: re-attach' : 'edge removed: a new one'})`,
    async () => {
      const t = setup({ keep });
      try {
        t.world.watchTiming = watching;
        let broken = false;
        t.world.statusOverride = (s) => ({ ...s, forwarder: { ...s.forwarder, active: !broken } });
        t.world.repair = () => ({ ok: false, detail: 'nginx.service failed to start' });
        const running = t.run();
        await untilReady(t);
        broken = true;
        try {
          await running;
          assert.unreachable('the run went on');
        } catch (error) {
          assert.instance(error, DataPlaneError);
          assert.is((error as DataPlaneError).exitCode, 7);
          assert.match(
            (error as Error).message,
            /degraded and repair did not help: the edge's forwarder \(nginx\) is not running/,
          );
          const hint = (error as DataPlaneError).hint ?? '';
          if (keep)
            assert.match(
              hint,
              /the edge was kept: .*innisfree ssh web -- innisfree-edge-status, then run up again to re-attach/,
            );
          else {
            assert.match(hint, /the edge was removed on exit; run up again for a new one/);
            assert.not.match(hint, /re-attach/);
          }
        }
        assert.ok(healthEvents(t).some((e) => e.status === 'failed'));
        assert.is(t.world.log.includes('edge.destroy'), !keep);
        assert.match(t.status().message ?? '', /repair did not help/);
      } finally {
        t.dir.remove();
      }
    },
  );
}

W('silence through the tunnel: the home link is renewed first, the edge is left alone', async () => {
  const t = setup();
  try {
    t.world.watchTiming = watching;
    let linkDead = false;
    t.world.probeResult = (host) => (linkDead && host === t.plan.edge.wireguard.peer.address ? 'silent' : undefined);
    t.world.onRenewLink = () => (linkDead = false);
    const running = t.run();
    await untilReady(t);
    linkDead = true;
    await until(() => healthEvents(t).some((e) => e.status === 'repaired'), 'repaired');
    assert.match(healthEvents(t)[0]!.problems.join(), /nothing answers through the tunnel/);
    assert.ok(t.world.log.includes('link.renew'));
    assert.not.ok(t.world.log.includes('edge.repair'), 'a home-side fault does not restart the edge');
    t.abort();
    await running;
  } finally {
    t.dir.remove();
  }
});

W('a stale handshake is noticed by the watch (keepalive-based), long before the 5-minute loss', async () => {
  const t = setup();
  try {
    t.world.watchTiming = { ...watching, lostAfterMs: 300_000 };
    const start = Math.floor(t.clock.now() / 1000);
    let frozen = false;
    t.world.handshake = () => (frozen ? start : Math.floor(t.clock.now() / 1000));
    t.world.onRenewLink = () => (frozen = false);
    const running = t.run();
    await untilReady(t);
    frozen = true;
    await until(() => healthEvents(t).some((e) => e.status === 'repaired'), 'repaired');
    const degraded = healthEvents(t)[0]!;
    assert.match(degraded.problems.join(), /no WireGuard handshake with the edge for \d+ s/);
    const seconds = Number(/for (\d+) s/.exec(degraded.problems.join())![1]);
    assert.ok(seconds < 300, `${seconds} s`);
    t.abort();
    await running;
  } finally {
    t.dir.remove();
  }
});

W('a dead SSH session: the watch logs in again (never re-bootstraps) and the tunnel is repaired', async () => {
  const t = setup();
  try {
    t.world.watchTiming = watching;
    const running = t.run();
    await untilReady(t);
    t.world.sshDown = true;
    await until(() => healthEvents(t).some((e) => e.status === 'repaired'), 'repaired');
    assert.match(healthEvents(t)[0]!.problems.join(), /did not report its status/);
    assert.ok(t.world.log.includes('ssh.reconnect'));
    assert.is(
      t.world.log.filter((l) => l === 'ssh.connect').length,
      1,
      'reachEdge (which may bootstrap) ran once, at start',
    );
    t.abort();
    await running;
  } finally {
    t.dir.remove();
  }
});

W('an edge that is unreachable for longer than a repair takes (a reboot) is waited for, then repaired', async () => {
  const t = setup();
  try {
    t.world.watchTiming = watching;
    const running = t.run();
    await untilReady(t);
    t.world.sshDown = true;
    // Five times the repair settle time, well inside lostAfterMs.
    t.world.reconnectFailsUntil = t.clock.now() + 5 * watching.repairSettleMs!;
    await until(
      () => healthEvents(t).some((e) => e.status === 'repaired' || e.status === 'failed'),
      'the watch settled',
    );
    assert.equal(
      healthEvents(t)
        .map((e) => e.status)
        .filter((s) => s !== 'repairing'),
      ['degraded', 'repaired'],
    );
    assert.ok(t.clock.now() >= t.world.reconnectFailsUntil, 'it waited for the edge to come back');
    t.abort();
    await running;
  } finally {
    t.dir.remove();
  }
});

W('an edge that cannot be reached again: exit 7, the hint says the edge stopped answering', async () => {
  const t = setup({ keep: true });
  try {
    t.world.watchTiming = watching;
    t.world.reconnectFails = true;
    const running = t.run();
    await untilReady(t);
    t.world.sshDown = true;
    try {
      await running;
      assert.unreachable();
    } catch (error) {
      assert.is((error as DataPlaneError).exitCode, 7);
      assert.match((error as DataPlaneError).hint ?? '', /stopped answering over SSH.*the edge was kept/);
    }
  } finally {
    t.dir.remove();
  }
});

W('"tunnel lost" without --keep does not tell the user to re-attach to an edge that is gone', async () => {
  const t = setup();
  try {
    const start = t.clock.now();
    t.world.handshake = () => Math.floor(start / 1000);
    try {
      await t.run();
      assert.unreachable();
    } catch (error) {
      assert.match((error as Error).message, /tunnel lost/);
      assert.not.match((error as DataPlaneError).hint ?? '', /re-attach/);
      assert.match((error as DataPlaneError).hint ?? '', /removed on exit/);
    }
  } finally {
    t.dir.remove();
  }
});

W.run();
