// The VM bed itself: a second kernel that has WireGuard boots, runs a command from this machine's userland, and
// hands its output and exit code back. The innisfree kernel-path tests build on this.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runInVm, vmUnavailable } from '../helpers/vm.js';

const unavailable = vmUnavailable();

test('a VM with the Debian kernel creates a kernel WireGuard link and configures it with wg', async () => {
  if (unavailable) {
    console.log(`  SKIPPED: VM test bed: ${unavailable}`);
    return;
  }
  const result = await runInVm(
    [
      'set -e',
      'modprobe wireguard',
      'ip link add wgvm0 type wireguard',
      'umask 077',
      'wg genkey > /tmp/k',
      'wg set wgvm0 private-key /tmp/k listen-port 51999',
      'ip -d link show wgvm0 | grep -q wireguard',
      'wg show wgvm0 listen-port',
      'node -e "console.log(\'node-in-vm\', process.version)"',
      'exit 7',
    ].join('\n'),
    { timeoutMs: 240_000 },
  );
  assert.is(result.timedOut, false, `VM timed out:\n${result.output}`);
  assert.ok(result.output.includes('51999'), result.output);
  assert.ok(result.output.includes('node-in-vm'), result.output);
  assert.is(result.code, 7, `exit code must come back from the VM:\n${result.output}`);
});

test('a failing command inside the VM reports its exit code', async () => {
  if (unavailable) {
    console.log(`  SKIPPED: VM test bed: ${unavailable}`);
    return;
  }
  const result = await runInVm('ip link add wgvm1 type nosuchtype', { timeoutMs: 240_000 });
  assert.is(result.timedOut, false, result.output);
  assert.ok(result.code !== undefined && result.code !== 0, result.output);
});

test.run();
