// The kernel path, in a second kernel that has wireguard.ko: the guest tests under test/vm/guest run inside a VM
// of the test bed (test/helpers/vm.ts) and their uvu summary and exit code come back here.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runInVm, vmUnavailable } from '../helpers/vm.js';

const unavailable = vmUnavailable();
const repo = fileURLToPath(new URL('../..', import.meta.url));

/** Runs one guest test file in a fresh VM; returns its output after asserting it passed. */
async function guest(file: string, timeoutMs = 480_000): Promise<string> {
  const result = await runInVm(
    // The compiled test (npm test builds dist/ first): esbuild under emulation would cost more than the test.
    ['ip link set lo up', 'modprobe wireguard', `cd '${repo}'`, `node ${file.replace(/^test\//, 'dist/test/').replace(/\.ts$/, '.js')}`].join('\n'),
    { timeoutMs, memoryMb: 1536 },
  );
  assert.is(result.timedOut, false, `the VM timed out:\n${result.output}`);
  assert.is(result.code, 0, `guest tests failed:\n${result.output}`);
  const passed = /Passed:\s+(\d+)/.exec(result.output);
  const total = /Total:\s+(\d+)/.exec(result.output);
  assert.ok(passed && total && passed[1] === total[1] && Number(total[1]) > 0, `no passing guest tests reported:\n${result.output}`);
  return result.output;
}

test('kernel WireGuard link manager: kernel devices, stale link replaced, a deleted link reported', async () => {
  if (unavailable) {
    console.log(`  SKIPPED: VM test bed: ${unavailable}`);
    return;
  }
  await guest('test/vm/guest/kernel-link.guest.ts');
});

test('innisfree up --provider local with kernel WireGuard at home and on the edge: traffic, status, crash, teardown', async () => {
  if (unavailable) {
    console.log(`  SKIPPED: VM test bed: ${unavailable}`);
    return;
  }
  await guest('test/vm/guest/kernel-up.guest.ts', 900_000);
});

test.run();
