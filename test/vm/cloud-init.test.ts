// Debian's cloud-init applying the user data innisfree sends to a stock droplet, in a VM of the test bed: the guest
// test (test/vm/guest/cloud-init.guest.ts) checks where the keys land and logs in with the pin.
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import { runGuestTest, vmUnavailable } from '../helpers/vm.js';

const unavailable =
  vmUnavailable() ??
  (existsSync('/usr/bin/cloud-init') ? undefined : 'cloud-init is not installed (Debian package cloud-init)');

test(
  "cloud-init installs the pinned host key and the tunnel key from the CLI's user data; the first login is " +
    'verified',
  async () => {
    if (unavailable) {
      console.log(`  SKIPPED: cloud-init test: ${unavailable}`);
      return;
    }
    await runGuestTest('test/vm/guest/cloud-init.guest.ts', 600_000);
  },
);

test.run();
