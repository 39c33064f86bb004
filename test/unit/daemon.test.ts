// Daemons that outlive innisfree (spawnDetachedDaemon): the local edge agent starts wireguard-go with it through
// home/wireguard.ts, then exits while the daemon serves on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { type Daemon, type DaemonExit, spawnDetachedDaemon } from '../../src/lib/daemon.js';
import { makeTempDir } from '../helpers/tmp.js';

const detached = suite('daemon: detached, its output in a log file');

/** The daemon does not hold the event loop (the agent exits while it runs): the test does, until it exits. */
async function exitOf(daemon: Daemon): Promise<DaemonExit> {
  const hold = setInterval(() => {}, 1000);
  try {
    return await daemon.exited;
  } finally {
    clearInterval(hold);
  }
}

detached('its exit is seen while this process runs, and tail() reads the log', async () => {
  const dir = makeTempDir();
  try {
    const log = join(dir.path, 'daemon.log');
    const daemon = spawnDetachedDaemon(log)('sh', ['-c', 'echo "$GREETING"; exit 3'], { env: { GREETING: 'hello' } });
    assert.ok(daemon.pid > 0);
    assert.equal(await exitOf(daemon), { code: 3, signal: null });
    assert.ok(daemon.done);
    assert.equal(daemon.tail(), ['hello']);
    assert.is(readFileSync(log, 'utf8'), 'hello\n');
  } finally {
    dir.remove();
  }
});

detached('a missing program is one line in tail(), as for a child daemon', async () => {
  const dir = makeTempDir();
  try {
    const daemon = spawnDetachedDaemon(join(dir.path, 'x.log'))('innisfree-no-such-program', []);
    await exitOf(daemon);
    assert.equal(daemon.tail(), ['innisfree-no-such-program: command not found']);
  } finally {
    dir.remove();
  }
});

detached('stop() ends it', async () => {
  const dir = makeTempDir();
  try {
    const daemon = spawnDetachedDaemon(join(dir.path, 'x.log'))('sleep', ['30']);
    const exit = await daemon.stop('SIGTERM', 1000);
    assert.is(exit.signal, 'SIGTERM');
  } finally {
    dir.remove();
  }
});

detached.run();
