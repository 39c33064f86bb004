// Helpers for tests of the DigitalOcean adapter against the fake API: a virtual clock (waits advance time
// instead of taking it), an event recorder, a tunnel spec and an SSH identity.
import type { Clock } from '../../src/lib/context.js';
import type { Emit, ProgressEvent } from '../../src/lib/events.js';
import { generateSshKeyPair } from '../../src/lib/keys.js';
import { DigitalOceanClient } from '../../src/providers/digitalocean/client.js';
import { DigitalOceanProvider } from '../../src/providers/digitalocean/digitalocean-provider.js';
import type { EdgeIdentity } from '../../src/providers/provider.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import type { TunnelSpec } from '../../src/spec/tunnel.js';
import { FakeDigitalOcean, type FakeOptions } from '../fake-do/server.js';

export interface VirtualClock extends Clock {
  /** Every wait asked for, in order. */
  sleeps: number[];
  advance(ms: number): void;
}

/** Starts at a fixed instant; sleep() moves time forward at once (yielding to the event loop so servers run). */
export function virtualClock(start = Date.parse('2026-11-22T10:00:00Z')): VirtualClock {
  let now = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      sleeps.push(ms);
      now += ms;
      await new Promise((resolve) => setImmediate(resolve));
      signal?.throwIfAborted();
    },
  };
}

export interface Recorder {
  emit: Emit;
  events: ProgressEvent[];
  /** Everything emitted, as one string (for "the token never appears" checks). */
  text(): string;
  warnings(): string[];
}

export function recorder(): Recorder {
  const events: ProgressEvent[] = [];
  return {
    emit: (event) => events.push(event),
    events,
    text: () => events.map((e) => JSON.stringify(e)).join('\n'),
    warnings: () =>
      events.filter((e) => e.type === 'log' && e.level === 'warn').map((e) => (e as { message: string }).message),
  };
}

export function testSpec(flags: Record<string, unknown> = {}): TunnelSpec {
  return resolveTunnelSpec([flagLayer({ name: 'web', ports: '443/tcp,80:8080/tcp,19132/udp', ...flags })]);
}

export function testIdentity(name = 'web'): EdgeIdentity {
  const client = generateSshKeyPair(`innisfree-${name}`);
  const host = generateSshKeyPair(`innisfree-${name}-edge`);
  return { sshPublicKey: client.publicKey, hostKey: { privateKey: host.privateKey, publicKey: host.publicKey } };
}

export interface Harness {
  fake: FakeDigitalOcean;
  clock: VirtualClock;
  events: Recorder;
  client: DigitalOceanClient;
  provider: DigitalOceanProvider;
  signal: AbortSignal;
}

/** A fake API, a client and a provider wired together; always stops the fake. */
export async function withFake<T>(
  options: FakeOptions & { firewall?: boolean; timeoutMs?: number },
  run: (h: Harness) => Promise<T>,
): Promise<T> {
  const clock = virtualClock();
  const fake = await FakeDigitalOcean.start({ now: clock.now, checkResponses: true, ...options });
  const events = recorder();
  const signal = new AbortController().signal;
  const client = new DigitalOceanClient({
    token: fake.token,
    baseUrl: fake.url,
    clock,
    emit: events.emit,
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const provider = new DigitalOceanProvider({ client, clock, ...(options.firewall ? { firewall: true } : {}) });
  try {
    const result = await run({ fake, clock, events, client, provider, signal });
    // Every test also checks: the token never reaches an event, and the fake saw only documented requests and
    // answered only in documented shapes.
    if (events.text().includes(fake.token)) throw new Error('the API token appeared in an event');
    if (fake.violations.length > 0)
      throw new Error(`requests outside the OpenAPI schemas:\n${fake.violations.join('\n')}`);
    if (fake.responseViolations.length > 0)
      throw new Error(`fake responses outside the OpenAPI schemas:\n${fake.responseViolations.join('\n')}`);
    return result;
  } finally {
    await fake.stop();
  }
}

export interface AccountCounts {
  droplets: number;
  keys: number;
  firewalls: number;
  records: number;
}

/** What the fake account holds that costs money or confuses a later run. */
export function accountOf(fake: FakeDigitalOcean): AccountCounts {
  let records = 0;
  for (const domain of fake.state.domains.values()) records += domain.records.size;
  return {
    droplets: fake.state.droplets.size,
    keys: fake.state.sshKeys.size,
    firewalls: fake.state.firewalls.size,
    records,
  };
}

/** A running droplet of tunnel `tunnel` made straight in the fake account, as an earlier `up` would leave it. */
export async function makeEdge(fake: FakeDigitalOcean, tunnel: string): Promise<{ id: number; publicKey: string }> {
  const { sshPublicKey } = testIdentity(tunnel);
  const key = fake.state.addSshKey(`innisfree-${tunnel}`, sshPublicKey);
  const droplet = await fake.state.createDroplet({
    name: `innisfree-${tunnel}`,
    region: 'nyc3',
    size: 's-1vcpu-1gb',
    image: 'debian-12-x64',
    ssh_keys: [key.fingerprint],
    tags: ['innisfree', `innisfree:${tunnel}`],
  });
  fake.state.advance(droplet);
  return { id: droplet.id, publicKey: sshPublicKey };
}
