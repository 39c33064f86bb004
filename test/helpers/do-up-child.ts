// A child process that runs the DigitalOcean half of `up` (ensureEdge with the tunnel's ledger) against the fake
// API, so a test can SIGKILL it at an exact moment. Input: a JSON file named by argv[2] with the fake's URL and
// token, the ledger path, the spec flags and the identity. Prints "ready" when ensureEdge returned.
import { readFileSync } from 'node:fs';
import { DigitalOceanClient } from '../../src/providers/digitalocean/client.js';
import { DigitalOceanProvider } from '../../src/providers/digitalocean/digitalocean-provider.js';
import type { EdgeIdentity } from '../../src/providers/provider.js';
import { ResourceLedger } from '../../src/state/resources.js';
import { testSpec, virtualClock } from './do.js';

interface ChildInput {
  url: string;
  token: string;
  ledger: string;
  flags: Record<string, unknown>;
  identity: EdgeIdentity;
}

const input = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ChildInput;
const clock = virtualClock();
const client = new DigitalOceanClient({
  token: input.token,
  baseUrl: input.url,
  clock,
  emit: () => {},
  timeoutMs: 60_000,
});
const provider = new DigitalOceanProvider({ client, clock, firewall: true });
const spec = testSpec(input.flags);
const ledger = await ResourceLedger.open(input.ledger, spec.name, clock.now);
await provider.ensureEdge({
  spec,
  identity: input.identity,
  emit: () => {},
  signal: new AbortController().signal,
  ledger,
});
process.stdout.write('ready\n');
