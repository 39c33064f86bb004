// The kernel path, in a second kernel that has wireguard.ko: the guest tests under test/vm/guest run inside a VM
// of the test bed (test/helpers/vm.ts) and their uvu summary and exit code come back here.
import { test } from 'uvu';
import { runGuestTest as guest, vmUnavailable } from '../helpers/vm.js';

const unavailable = vmUnavailable();

test('kernel WireGuard link manager: kernel devices, stale link replaced, a deleted link reported', async () => {
  if (unavailable) {
    console.log(`  SKIPPED: VM test bed: ${unavailable}`);
    return;
  }
  await guest('test/vm/guest/kernel-link.guest.ts');
});

test(
  'innisfree up --provider local with kernel WireGuard at home and on the edge: traffic, status, ' + 'crash, teardown',
  async () => {
    if (unavailable) {
      console.log(`  SKIPPED: VM test bed: ${unavailable}`);
      return;
    }
    await guest('test/vm/guest/kernel-up.guest.ts', 900_000);
  },
);

test.run();
