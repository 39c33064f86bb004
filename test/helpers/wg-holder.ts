// Test helper process: brings one WireGuard link up from the JSON spec in argv[2], prints "UP <implementation>
// <daemon-less|pid>", and takes it down on SIGTERM. Tests kill it with SIGKILL to play a crashed innisfree.
import { systemExec } from '../../src/lib/context.js';
import { type WireguardLinkSpec, wireguardUp } from '../../src/home/wireguard.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as WireguardLinkSpec;
const link = await wireguardUp({ exec: systemExec, emit: () => {} }, spec);
process.stdout.write(`UP ${link.implementation}\n`);
const keepAlive = setInterval(() => {}, 60_000);
process.once('SIGTERM', () => {
  void link.down().then(() => {
    clearInterval(keepAlive);
    process.stdout.write('DOWN\n');
  });
});
link.failure.catch((error: Error) => {
  process.stdout.write(`FAILED ${error.message}\n`);
  process.exit(7);
});
