// Test helper process: runs the home data plane (link, routing, forwarder) from the JSON input in argv[2] the way
// `up` does once the edge is ready, inside whatever namespace it was started in. Prints "READY", then on
// SIGTERM/SIGINT stops in order and prints "STOPPED" (exit 0); on a data-plane failure prints "FAILED …" (exit 7).
import { type HomeDataPlaneInput, runUntilStopped, startHomeDataPlane } from '../../src/home/data-plane.js';
import { systemExec } from '../../src/lib/context.js';
import { exitCodeOf, formatError } from '../../src/lib/errors.js';

const input = JSON.parse(process.argv[2] ?? '{}') as HomeDataPlaneInput;
const controller = new AbortController();
// `on`, not `once`: a repeated signal while stopping must not fall back to the default action and kill this runner
// half-way through its teardown (the tests check what the teardown leaves).
process.on('SIGTERM', () => controller.abort());
process.on('SIGINT', () => controller.abort());
try {
  const plane = await startHomeDataPlane({ exec: systemExec, emit: () => {} }, input);
  process.stdout.write(`READY ${plane.link.implementation}\n`);
  await runUntilStopped(controller.signal, plane.failure, () => plane.stop());
  process.stdout.write('STOPPED\n');
  process.exit(0);
} catch (error) {
  process.stdout.write(`FAILED ${formatError(error)}\n`);
  process.exit(exitCodeOf(error));
}
