import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../src/state/files.js';
import { tunnelPaths } from '../../src/state/paths.js';
import type { TunnelStatus } from '../../src/state/status.js';
import { writeTunnelRecord } from '../../src/state/tunnel-record.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('cli: status');

function sample(pid: number | null, phase: TunnelStatus['phase']): TunnelStatus {
  return {
    version: 1,
    name: 'web',
    phase,
    pid,
    provider: 'local',
    updatedAt: new Date().toISOString(),
    edge: {
      provider: 'local',
      id: 'isf-e-1',
      name: 'innisfree-web',
      tunnel: 'web',
      ipv4: '198.51.100.1',
      region: 'local',
      size: 'local',
      status: 'running',
      createdAt: new Date().toISOString(),
    },
    plannedConfigHash: 'a'.repeat(64),
    deployedConfigHash: 'a'.repeat(64),
    message: null,
    dataPlane: {
      sampledAt: new Date().toISOString(),
      interface: 'isf-web',
      implementation: 'kernel',
      latestHandshake: Math.floor(Date.now() / 1000) - 7,
      rxBytes: 2048,
      txBytes: 1024,
      endpoint: '198.51.100.1:51820',
      ports: [
        {
          protocol: 'tcp',
          listenPort: 8080,
          opened: 3,
          active: 1,
          bytesIn: 300,
          bytesOut: 4096,
          errors: 0,
          destination: '127.0.0.1:8080',
        },
        {
          protocol: 'tcp',
          listenPort: 443,
          opened: 2,
          active: 0,
          bytesIn: 1,
          bytesOut: 1,
          errors: 0,
          path: 'kernel',
          destination: '192.168.1.20:443',
        },
      ],
    },
  };
}

async function tunnelWithStatus(root: string, status: TunnelStatus, lockPid?: number): Promise<void> {
  const paths = tunnelPaths(root, 'web');
  await writeTunnelRecord(
    paths,
    'web',
    {
      index: 0,
      pool: '10.50.0.0/16',
      interface: 'isf-web',
      edgeInterface: 'ise-web',
      homeAddress: '10.50.0.2/30',
      edgeAddress: '10.50.0.1/30',
    },
    new Date(),
  );
  await writeJsonAtomic(paths.status, status);
  if (lockPid !== undefined) {
    const { processStartTime } = await import('../../src/state/lock.js');
    const { hostname } = await import('node:os');
    await writeJsonAtomic(paths.lock, {
      pid: lockPid,
      startTime: processStartTime(lockPid),
      hostname: hostname(),
      command: 'up',
      since: '',
    });
  }
}

S('a running tunnel: phase, address, handshake age, counters, config in sync', async () => {
  const dir = makeTempDir();
  try {
    const root = join(dir.path, 'state');
    await tunnelWithStatus(root, sample(process.pid, 'ready'), process.pid);
    const env = { INNISFREE_STATE_DIR: root };
    const text = await runCli(['status', 'web'], env);
    assert.is(text.code, 0, text.stderr);
    assert.match(text.stdout, /^web: ready \(pid \d+\)/);
    assert.match(text.stdout, /public address\s+198\.51\.100\.1/);
    assert.match(text.stdout, /wireguard\s+isf-web \(kernel\), handshake [6-9] s ago, rx 2\.0 KiB, tx 1\.0 KiB/);
    assert.match(text.stdout, /8080\/tcp\s+3 connections \(1 active\), in 300 B, out 4\.0 KiB, to 127\.0\.0\.1:8080\n/);
    assert.match(
      text.stdout,
      /443\/tcp\s+2 connections, in 1 B, out 1 B \(kernel\), to 192\.168\.1\.20:443\n/,
      "each port's own destination",
    );
    assert.match(text.stdout, /\(in sync\)/);
    const json = JSON.parse((await runCli(['status', 'web', '--json'], env)).stdout) as {
      phase: string;
      running: boolean;
      handshakeAgeSeconds: number;
    };
    assert.is(json.phase, 'ready');
    assert.is(json.running, true);
    assert.ok(json.handshakeAgeSeconds >= 6 && json.handshakeAgeSeconds <= 9);
  } finally {
    dir.remove();
  }
});

S('a degraded tunnel: the phase and the problem the watch is repairing', async () => {
  const dir = makeTempDir();
  try {
    const root = join(dir.path, 'state');
    const reason = "degraded: the edge's forwarder (nginx) is not running";
    await tunnelWithStatus(root, { ...sample(process.pid, 'degraded'), message: reason }, process.pid);
    const env = { INNISFREE_STATE_DIR: root };
    const text = await runCli(['status', 'web'], env);
    assert.is(text.code, 0, text.stderr);
    assert.match(text.stdout, /^web: degraded \(pid \d+\)/);
    assert.match(text.stdout, /\n {2}problem\s+degraded: the edge's forwarder \(nginx\) is not running\n/);
    assert.not.match(text.stdout, /last error/);
    const json = JSON.parse((await runCli(['status', 'web', '--json'], env)).stdout) as {
      phase: string;
      status: { message: string };
    };
    assert.is(json.phase, 'degraded');
    assert.is(json.status.message, reason);
  } finally {
    dir.remove();
  }
});

S('a "ready" tunnel whose process is gone is reported stale', async () => {
  const dir = makeTempDir();
  try {
    const root = join(dir.path, 'state');
    await tunnelWithStatus(root, sample(999999, 'ready'));
    const json = JSON.parse((await runCli(['status', '--json'], { INNISFREE_STATE_DIR: root })).stdout) as Array<{
      phase: string;
      running: boolean;
    }>;
    assert.equal(
      json.map((r) => [r.phase, r.running]),
      [['stale', false]],
    );
  } finally {
    dir.remove();
  }
});

S('an unknown tunnel is a usage error', async () => {
  const dir = makeTempDir();
  try {
    const result = await runCli(['status', 'nope'], { INNISFREE_STATE_DIR: dir.path });
    assert.is(result.code, 2);
    assert.match(result.stderr, /no tunnel named "nope"/);
  } finally {
    dir.remove();
  }
});

S('no tunnels at all', async () => {
  const dir = makeTempDir();
  try {
    const result = await runCli(['status'], { INNISFREE_STATE_DIR: dir.path });
    assert.is(result.code, 0);
    assert.match(result.stdout, /No tunnels on this host/);
  } finally {
    dir.remove();
  }
});

S.run();
