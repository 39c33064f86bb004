import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { type Server, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { PROBE_PARALLELISM, parseProbeOutput, probeAllCommand, probeInput } from '../../src/edge/edge-session.js';
import { mapLimit } from '../../src/lib/map-limit.js';

const P = suite('probeTcpAll: one command probes every target in parallel');

P('targets go on stdin as validated lines; anything else is refused before it reaches a shell', () => {
  assert.is(
    probeInput([
      { host: '10.50.0.2', port: 443 },
      { host: 'fd49::2', port: 80 },
    ]),
    '10.50.0.2 443\nfd49::2 80\n',
  );
  assert.throws(() => probeInput([{ host: '127.0.0.1; rm -rf /', port: 1 }]), /IP addresses/);
  assert.throws(() => probeInput([{ host: '127.0.0.1', port: 0 }]), /bad port/);
  assert.not.match(probeAllCommand(3000), /10\.50/);
});

P("results come back in the targets' order; a missing line is silent", () => {
  const targets = [
    { host: '127.0.0.1', port: 1 },
    { host: '127.0.0.1', port: 2 },
    { host: '127.0.0.1', port: 3 },
  ];
  assert.equal(parseProbeOutput('127.0.0.1 3 open\n127.0.0.1 1 refused\n', targets), ['refused', 'silent', 'open']);
});

P('the command run by a real shell: open and refused, 300 targets in about one timeout', async () => {
  const servers: Server[] = [];
  const open: number[] = [];
  for (let i = 0; i < 3; i++) {
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    open.push((server.address() as AddressInfo).port);
  }
  try {
    // Three listeners, then closed ports on loopback (refused, unless another program holds one).
    const targets = [
      ...open.map((port) => ({ host: '127.0.0.1', port })),
      ...Array.from({ length: 300 }, (_, i) => ({ host: '127.0.0.1', port: 1 + i })).filter(
        (t) => !open.includes(t.port),
      ),
    ];
    const started = Date.now();
    const stdout = execFileSync('/bin/sh', ['-c', probeAllCommand(2000)], {
      input: probeInput(targets),
      encoding: 'utf8',
    });
    const elapsed = Date.now() - started;
    const results = parseProbeOutput(stdout, targets);
    assert.equal(results.slice(0, 3), ['open', 'open', 'open']);
    assert.ok(
      results.slice(3).every((r) => r === 'refused' || r === 'open'),
      'closed loopback ports are refused (or held by another program)',
    );
    console.log(`  ${targets.length} probes in ${elapsed} ms (${PROBE_PARALLELISM} at a time)`);
  } finally {
    for (const server of servers) server.close();
  }
});

const M = suite('mapLimit');

M('keeps order and never runs more than the limit at once', async () => {
  let running = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3, 0, 6], 3, async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, n));
    running--;
    return n * 10;
  });
  assert.equal(out, [50, 10, 40, 20, 30, 0, 60]);
  assert.is(most, 3);
});

M('an aborted signal stops starting new work', async () => {
  const controller = new AbortController();
  const started: number[] = [];
  try {
    await mapLimit(
      [1, 2, 3, 4],
      1,
      async (n) => {
        started.push(n);
        if (n === 2) controller.abort(new Error('stop'));
      },
      controller.signal,
    );
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, 'stop');
  }
  assert.equal(started, [1, 2]);
});

P.run();
M.run();
