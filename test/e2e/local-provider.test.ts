// The local provider with real namespaces: create → sshd reachable with the pinned key → destroy leaves nothing;
// a second provider instance (another process, after a crash) finds the same edge again.
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pinHostKey } from '../../src/edge/known-hosts.js';
import { openEdgeSession } from '../../src/edge/edge-session.js';
import { readEdgeStatus } from '../../src/edge/edge-status.js';
import { runSsh, waitReady } from '../../src/edge/ssh.js';
import type { SshTarget } from '../../src/edge/deployer-port.js';
import { systemClock } from '../../src/lib/context.js';
import { parsePid } from '../../src/lib/pid.js';
import { type ProgressEvent, silent } from '../../src/lib/events.js';
import { edgeSessionPath } from '../../src/providers/local/edge-runtime-files.js';
import { LocalProvider } from '../../src/providers/local/index.js';
import {
  assertNoHostCollision,
  assertNoHostCollision6,
  assertNothingLeft,
  footprintOf,
  identityFor,
  localProviderUnavailable,
  randomTunnelName,
  specFor,
} from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';

/** How a TCP connection attempt from here ends: "connected", or the error code (ECONNREFUSED proves a route). */
function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    socket.once('connect', () => (socket.destroy(), resolve('connected')));
    socket.once('timeout', () => (socket.destroy(), resolve('timeout')));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

const S = suite('local provider: namespaces, sshd, rediscovery');
const skip = localProviderUnavailable();
const signal = new AbortController().signal;

if (skip) {
  S('skipped', () => console.log(`  SKIPPED local provider tests: ${skip}`));
} else {
  S('create → SSH with the pinned key → the edge lives in its namespace → destroy leaves nothing', async () => {
    const runtime = makeTempDir('innisfree-local-rt-');
    const state = makeTempDir('innisfree-local-state-');
    const provider = new LocalProvider({ env: {}, runtimeDir: runtime.path });
    const name = randomTunnelName();
    const identity = identityFor(name);
    let footprint: ReturnType<typeof footprintOf> | undefined;
    try {
      const events: ProgressEvent[] = [];
      const { edge, created } = await provider.ensureEdge({
        spec: specFor(name, '8080/tcp'),
        identity,
        emit: (e) => events.push(e),
        signal,
      });
      assert.ok(created);
      assert.is(edge.provider, 'local');
      assert.is(edge.tunnel, name);
      assert.is(edge.name, `innisfree-${name}`);
      assert.match(edge.ipv4, /^203\.0\.113\.\d+$/);
      assert.is(edge.status, 'running');
      const local = (await provider.localEdge(name))!;
      footprint = footprintOf(local);
      // This machine's eth0 is in 192.0.2.0/24, the range clients used to come from: no address may meet the host's.
      assertNoHostCollision(local);

      const keyPath = join(state.path, 'id_ed25519');
      writeFileSync(keyPath, identity.clientPrivateKey, { mode: 0o600 });
      const target: SshTarget = {
        host: edge.ipv4,
        port: 22,
        user: 'root',
        privateKeyPath: keyPath,
        knownHostsPath: join(state.path, 'known_hosts'),
      };
      await pinHostKey(target.knownHostsPath, edge.ipv4, 22, identity.hostKey.publicKey);
      await waitReady(target, { timeoutMs: 10_000, clock: systemClock, emit: silent, signal });
      const inside = await runSsh(
        target,
        'readlink /proc/self/ns/net; echo $INNISFREE_LOCAL_EDGE_DIR; command -v innisfree-edge-status; ' +
          'echo $HOME; echo $PATH; ls -A $HOME | wc -l',
      );
      assert.is(inside.exitCode, 0, inside.stderr);
      const [netns, dir, statusCommand, home, path, homeEntries] = inside.stdout.trim().split('\n');
      assert.is(netns, readlinkSync(`/proc/${footprint.pids[0]}/ns/net`), 'the session runs in the edge namespace');
      assert.is(dir, local.paths.dir);
      assert.match(statusCommand ?? '', /\/bin\/innisfree-edge-status$/);
      // Root's home on the edge is its own and empty, as on a fresh droplet: bash sources ~/.bashrc for SSH
      // sessions, and this host's (pyenv, cargo) changed PATH and once blocked every session on a stale lock.
      assert.is(home, local.paths.home);
      assert.is(homeEntries, '0');
      assert.is(path, edgeSessionPath(local.paths), "no dotfile of this host's root changed the session's PATH");

      // The edge reports its status with the same script NixOS edges run: not deployed yet.
      const status = await readEdgeStatus(runSsh, target);
      assert.equal(status, {
        name,
        configHash: null,
        wireguard: { interface: 'none', publicKey: null, up: false, peers: [] },
        forwarder: { kind: 'nginx', active: false, listening: [] },
      });

      // The session `up` uses: the status command exists on a local edge; probes run inside the edge namespace.
      const session = await openEdgeSession(target);
      try {
        assert.is((await session.status())?.name, name);
        assert.is(await session.probeTcp(edge.ipv4, 22), true);
        assert.is(await session.probeTcp('127.0.0.1', 22), true);
        assert.is(await session.probeTcp(local.layout.addresses.home, 1, 2000), false);
      } finally {
        await session.close();
      }

      // The internet client reaches the edge's public address (its sshd answers), and has no other route.
      const banner = await provider.runInClient(name, ['socat', '-T2', '-', `TCP:${edge.ipv4}:22,connect-timeout=2`], {
        timeoutMs: 5000,
      });
      assert.match(banner.stdout, /^SSH-2\.0-OpenSSH/, banner.stderr);
      const routes = await provider.runInClient(name, ['ip', '-4', 'route']);
      assert.not.match(routes.stdout, /default/, 'the client has no route off the machine');
      assert.equal(await provider.clientCommand(name, ['curl', `http://${edge.ipv4}:8080/`]), [
        'ip',
        'netns',
        'exec',
        local.layout.namespaces.client,
        'curl',
        `http://${edge.ipv4}:8080/`,
      ]);

      // A destination host on the home side, when asked.
      const destination = await provider.ensureDestination(name);
      assert.match(destination.address, /^203\.0\.113\.\d+$/);
      assert.is(
        await connectOutcome(destination.address, 9),
        'ECONNREFUSED',
        'the destination answers (nothing listens, so it refuses)',
      );
      footprint = footprintOf((await provider.localEdge(name))!);

      await provider.destroyEdge(name, { emit: silent, signal });
      assertNothingLeft(footprint);
      assert.is(await provider.findEdge(name), undefined);
      await provider.destroyEdge(name, { emit: silent, signal }); // a missing edge is not an error
    } finally {
      await provider.destroyEdge(name, { emit: silent, signal }).catch(() => {});
      runtime.remove();
      state.remove();
    }
    if (footprint) assertNothingLeft(footprint);
  });

  S('a second provider instance rediscovers the edge (same address) after the first one is gone', async () => {
    const runtime = makeTempDir('innisfree-local-rt-');
    const name = randomTunnelName();
    const identity = identityFor(name);
    const first = new LocalProvider({ env: {}, runtimeDir: runtime.path });
    let footprint: ReturnType<typeof footprintOf> | undefined;
    try {
      const { edge } = await first.ensureEdge({ spec: specFor(name, '8080/tcp'), identity, emit: silent, signal });
      footprint = footprintOf((await first.localEdge(name))!);
      // "Crash": the first instance is simply dropped; a new one, e.g. in the next `up`, reads the runtime dir.
      const second = new LocalProvider({ env: { INNISFREE_LOCAL_DIR: runtime.path } });
      const found = await second.findEdge(name);
      assert.equal(found, edge);
      assert.equal(
        (await second.listEdges()).map((e) => e.tunnel),
        [name],
      );
      const again = await second.ensureEdge({ spec: specFor(name, '8080/tcp'), identity, emit: silent, signal });
      assert.not.ok(again.created);
      assert.is(again.edge.ipv4, edge.ipv4);

      // The sshd died with the crash: re-attaching starts it again.
      const sshdPid = parsePid(readFileSync((await second.localEdge(name))!.paths.sshdPid, 'utf8'));
      assert.ok(sshdPid, 'the edge sshd wrote its pid');
      process.kill(sshdPid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      const events: ProgressEvent[] = [];
      const repaired = await second.ensureEdge({
        spec: specFor(name, '8080/tcp'),
        identity,
        emit: (e) => events.push(e),
        signal,
      });
      assert.not.ok(repaired.created);
      assert.is(repaired.edge.status, 'running');
      assert.ok(events.some((e) => e.type === 'log' && /restarting the SSH server/.test(e.message)));

      // A changed --edge-ssh-port moves the edge's sshd.
      const moved = await second.ensureEdge({
        spec: specFor(name, '8080/tcp', { edgeSshPort: '2222' }),
        identity,
        emit: silent,
        signal,
      });
      assert.not.ok(moved.created);
      assert.is(await connectOutcome(edge.ipv4, 2222), 'connected');
      assert.is(await connectOutcome(edge.ipv4, 22), 'ECONNREFUSED');

      footprint = footprintOf((await second.localEdge(name))!);
      await second.destroyEdge(name, { emit: silent, signal });
      assertNothingLeft(footprint);
    } finally {
      await first.destroyEdge(name, { emit: silent, signal }).catch(() => {});
      runtime.remove();
    }
    if (footprint) assertNothingLeft(footprint);
  });

  S('two local edges coexist with distinct addresses and namespaces', async () => {
    const runtime = makeTempDir('innisfree-local-rt-');
    const provider = new LocalProvider({ env: {}, runtimeDir: runtime.path });
    const names = [randomTunnelName(), randomTunnelName()];
    const footprints: Array<ReturnType<typeof footprintOf>> = [];
    try {
      const edges = await Promise.all(
        names.map((n) =>
          provider.ensureEdge({ spec: specFor(n, '8080/tcp'), identity: identityFor(n), emit: silent, signal }),
        ),
      );
      assert.is.not(edges[0]!.edge.ipv4, edges[1]!.edge.ipv4);
      assert.is.not(edges[0]!.edge.id, edges[1]!.edge.id);
      for (const n of names) footprints.push(footprintOf((await provider.localEdge(n))!));
      assert.equal((await provider.listEdges()).map((e) => e.tunnel).sort(), [...names].sort());
    } finally {
      for (const n of names) await provider.destroyEdge(n, { emit: silent, signal }).catch(() => {});
      runtime.remove();
    }
    for (const footprint of footprints) assertNothingLeft(footprint);
  });

  S(
    'IPv6 follows --ipv6: added to a recorded edge, reached from the client, taken away again, nothing left',
    async () => {
      const runtime = makeTempDir('innisfree-local-rt-');
      const provider = new LocalProvider({ env: {}, runtimeDir: runtime.path });
      const name = randomTunnelName();
      const identity = identityFor(name);
      let footprint: ReturnType<typeof footprintOf> | undefined;
      // A TCP connection from the client to the edge's SSH port over IPv6: connected, or refused (a route), else why
      // not.
      const ping = async (address: string): Promise<number | string> => {
        const result = await provider.runInClient(
          name,
          ['socat', '-T', '2', '/dev/null', `TCP6:[${address}]:22,connect-timeout=2`],
          { timeoutMs: 10_000 },
        );
        return result.exitCode === 0 || /Connection refused/.test(result.stderr)
          ? 0
          : result.stderr.trim() || `exit ${result.exitCode}`;
      };
      try {
        const plain = await provider.ensureEdge({ spec: specFor(name, '8080/tcp'), identity, emit: silent, signal });
        assert.is(plain.edge.ipv6, undefined, 'no IPv6 without --ipv6');
        const withV6 = await provider.ensureEdge({
          spec: specFor(name, '8080/tcp', { ipv6: true }),
          identity,
          emit: silent,
          signal,
        });
        const local = (await provider.localEdge(name))!;
        assert.ok(local.layout.block6, 'the record keeps the IPv6 block');
        assertNoHostCollision6(local);
        assert.is(withV6.edge.ipv6, local.layout.addresses.edge6);
        assert.match(withV6.edge.ipv6!, /^2001:db8:[0-9a-f]+:1::[0-9a-f]+$/);
        assert.is(await ping(local.layout.addresses.edge6!), 0, 'the internet client reaches the edge over IPv6');
        assert.match(
          await provider.clientNote(name),
          new RegExp(`${local.layout.addresses.client6}.*${local.layout.block6}::/48 \\(IPv6\\)`),
        );
        footprint = footprintOf(local);
        // A later --ipv6 run keeps the recorded address and puts back one that went missing.
        await provider.runInClient(name, [
          'ip',
          '-6',
          'addr',
          'flush',
          'dev',
          local.layout.links.clientSide,
          'scope',
          'global',
        ]);
        const kept = await provider.ensureEdge({
          spec: specFor(name, '8080/tcp', { ipv6: true }),
          identity,
          emit: silent,
          signal,
        });
        assert.is(kept.edge.ipv6, withV6.edge.ipv6);
        assert.is(await ping(local.layout.addresses.edge6!), 0, 'the client has its IPv6 again');
        const again = await provider.ensureEdge({ spec: specFor(name, '8080/tcp'), identity, emit: silent, signal });
        assert.is(again.edge.ipv6, undefined, 'a run without --ipv6 takes it away');
        assert.is((await provider.localEdge(name))!.record.block6, undefined);
        assert.is.not(await ping(local.layout.addresses.edge6!), 0);
        await provider.destroyEdge(name, { emit: silent, signal });
      } finally {
        await provider.destroyEdge(name, { emit: silent, signal }).catch(() => {});
        runtime.remove();
      }
      if (footprint) assertNothingLeft(footprint);
    },
  );
}

S.run();
