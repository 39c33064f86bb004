// The claim on a tunnel's state directory: a directory this run made goes again when the run is refused before it
// kept it (or when another state directory's tunnel holds the edge); one that existed, or was kept, stays; the lock
// is released in every case.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BusyError, UsageError } from '../../src/lib/errors.js';
import { tunnelPaths } from '../../src/state/paths.js';
import { claimTunnelState } from '../../src/state/tunnel-claim.js';
import { makeTempDir } from '../helpers/tmp.js';

const refused = new UsageError('--address-pool: no room');
const temps: Array<{ remove(): void }> = [];
function tempDir(): string {
  const dir = makeTempDir();
  temps.push(dir);
  return dir.path;
}
test.after(() => temps.forEach((dir) => dir.remove()));

test('a new state directory goes when the run is refused before it kept it, and so does a new root', async () => {
  const root = join(tempDir(), 'state');
  const claim = await claimTunnelState(root, 'web', 'innisfree up (local)');
  writeFileSync(join(tunnelPaths(root, 'web').dir, 'tunnel.json'), '{}');
  await claim.release(refused);
  assert.not.ok(existsSync(tunnelPaths(root, 'web').dir));
  assert.not.ok(existsSync(root));
});

test('a kept state directory stays after a failure, unless the edge belongs to another state directory', async () => {
  const root = tempDir();
  const kept = await claimTunnelState(root, 'web', 'innisfree up (local)');
  kept.keep();
  await kept.release(new Error('the deploy failed'));
  assert.ok(existsSync(tunnelPaths(root, 'web').dir));

  const busy = await claimTunnelState(root, 'api', 'innisfree up (local)');
  busy.keep();
  await busy.release(new BusyError('edge innisfree-api is used by another state directory'));
  assert.not.ok(existsSync(tunnelPaths(root, 'api').dir));
  assert.ok(existsSync(root), 'a root that existed stays');
});

test('a state directory that existed before the run stays whatever happens; success keeps a new one', async () => {
  const root = tempDir();
  mkdirSync(tunnelPaths(root, 'web').dir, { recursive: true });
  const claim = await claimTunnelState(root, 'web', 'innisfree up (local)');
  await claim.release(refused);
  assert.ok(existsSync(tunnelPaths(root, 'web').dir));

  const fresh = await claimTunnelState(root, 'new', 'innisfree up (local)');
  await fresh.release();
  assert.ok(existsSync(tunnelPaths(root, 'new').dir));
});

test('the lock is released: a second claim succeeds after the first is released, and is refused before', async () => {
  const root = tempDir();
  const first = await claimTunnelState(root, 'web', 'innisfree up (local)');
  try {
    await claimTunnelState(root, 'web', 'innisfree up (local)');
    assert.unreachable('a second live claim must be refused');
  } catch (error) {
    assert.instance(error, BusyError);
  }
  await first.release();
  const second = await claimTunnelState(root, 'web', 'innisfree up (local)');
  await second.release();
});

test.run();
