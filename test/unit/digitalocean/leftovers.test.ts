// Issue 10: a failed or interrupted `up` leaves nothing in the account. Each case drives the provider against the
// fake API with a fault, then asserts the fake's final state (no droplet, key, firewall or record of the tunnel),
// the ledger (resources.json gone), the exit code and one clear line.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InnisfreeError, InterruptedError, ProviderError } from '../../../src/lib/errors.js';
import type { EdgeIdentity } from '../../../src/providers/provider.js';
import type { TunnelSpec } from '../../../src/spec/tunnel.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import { DigitalOceanProvider } from '../../../src/providers/digitalocean/digitalocean-provider.js';
import { createRenderer } from '../../../src/lib/progress-renderer.js';
import { type AccountCounts, type Harness, accountOf, testIdentity, testSpec, withFake } from '../../helpers/do.js';
import { makeTempDir } from '../../helpers/tmp.js';

const EMPTY: AccountCounts = { droplets: 0, keys: 0, firewalls: 0, records: 0 };

async function withLedger<T>(run: (path: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir('innisfree-ledger-');
  try {
    return await run(join(dir.path, 'resources.json'));
  } finally {
    dir.remove();
  }
}

async function up(
  h: Harness,
  spec: TunnelSpec,
  ledgerPath: string,
  signal: AbortSignal = h.signal,
  identity: EdgeIdentity = testIdentity(),
) {
  const ledger = await ResourceLedger.open(ledgerPath, spec.name, h.clock.now);
  return h.provider.ensureEdge({ spec, identity, emit: h.events.emit, signal, ledger });
}

async function rejection(promise: Promise<unknown>): Promise<InnisfreeError> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof InnisfreeError)) throw error;
    return error;
  }
  throw new Error('expected a rejection');
}

/** What a user sees: exit code 3 (provider) and a one-line message. */
function assertProviderFailure(error: InnisfreeError, pattern: RegExp): void {
  assert.instance(error, ProviderError);
  assert.is(error.exitCode, 3);
  assert.match(error.message, pattern);
  assert.not.match(error.message, /\n/);
}

const F = suite('issue 10 case 1: a failed up removes what it registered');

F('an unknown region: the key is removed, nothing is left, exit 3', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      const error = await rejection(up(h, testSpec({ region: 'xyz9' }), path));
      assertProviderFailure(error, /Region is not available/);
      assert.equal(accountOf(h.fake), EMPTY);
      assert.not.ok(existsSync(path), 'the ledger is gone once everything is removed');
    }),
  ),
);

F('the droplet limit reached: the key is removed', () =>
  withLedger((path) =>
    withFake({ dropletLimit: 0 }, async (h) => {
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /droplet limit/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('500 on create three times: nothing is left', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      h.fake.inject({ method: 'POST', path: '/v2/droplets', times: 3, response: { kind: 'server-error' } });
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /POST \/v2\/droplets failed with 500/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('503 on create three times: nothing is left', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      h.fake.inject({
        method: 'POST',
        path: '/v2/droplets',
        times: 3,
        response: { kind: 'server-error', status: 503 },
      });
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /failed with 503/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('five "Please try again": nothing is left', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      h.fake.inject({ method: 'POST', path: '/v2/droplets', times: 5, response: { kind: 'please-try-again' } });
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /Please try again/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('activation timeout: droplet and key are removed', () =>
  withLedger((path) =>
    withFake({ activation: { afterPolls: 1_000_000 } }, async (h) => {
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /did not become active/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('a failure after the droplet, firewall and first DNS record were made removes all of them', () =>
  withLedger((path) =>
    withFake({ firewall: true }, async (h) => {
      h.fake.state.addDomain('example.com');
      // The AAAA record's create fails for good (after the A record was made).
      h.fake.inject({
        method: 'POST',
        path: '/v2/domains/example.com/records',
        skip: 1,
        times: Infinity,
        response: { kind: 'server-error' },
      });
      const error = await rejection(up(h, testSpec({ dns: 'web.example.com', ipv6: true }), path));
      assert.instance(error, ProviderError);
      assert.equal(accountOf(h.fake), EMPTY);
      assert.not.ok(existsSync(path));
    }),
  ),
);

F('a name outside the account (failure after the key and droplet): both are removed', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      const error = await rejection(up(h, testSpec({ dns: 'web.example.org' }), path));
      assertProviderFailure(error, /no domain of this DigitalOcean account contains it/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('--keep: a successful run hands everything over (empty ledger); a later failing run removes only what it made', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      const keptIdentity = testIdentity();
      await up(h, testSpec({ keep: true }), path, h.signal, keptIdentity);
      assert.not.ok(existsSync(path), 'handed over');
      assert.is(h.fake.state.droplets.size, 1);
      // A later failing run with --keep (a firewall it cannot make) removes only what it made: the firewall entry.
      // The kept droplet and key predate it and stay.
      h.fake.inject({
        method: 'POST',
        path: '/v2/firewalls',
        times: Infinity,
        response: {
          kind: 'raw',
          status: 403,
          body: '{"id":"forbidden","message":"You are not authorized to perform this operation"}',
        },
      });
      const withFirewall = new DigitalOceanProvider({ client: h.client, clock: h.clock, firewall: true });
      const ledger = await ResourceLedger.open(path, 'web', h.clock.now);
      const error = await rejection(
        withFirewall.ensureEdge({
          spec: testSpec({ keep: true }),
          identity: keptIdentity,
          emit: h.events.emit,
          signal: h.signal,
          ledger,
        }),
      );
      assert.match(error.message, /403/);
      assert.equal(accountOf(h.fake), { droplets: 1, keys: 1, firewalls: 0, records: 0 });
    }),
  ),
);

F('--keep and a failure: what that run made is removed all the same', () =>
  withLedger((path) =>
    withFake({ activation: { afterPolls: 1_000_000 } }, async (h) => {
      const error = await rejection(up(h, testSpec({ keep: true }), path));
      assertProviderFailure(error, /did not become active/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

F('without --keep the ledger lists what the run made, by id and by how to find it again', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      const { edge } = await up(h, testSpec(), path);
      const ledger = JSON.parse(readFileSync(path, 'utf8')) as {
        resources: Array<{ kind: string; id?: string; find: Record<string, unknown> }>;
      };
      assert.equal(
        ledger.resources.map((r) => r.kind),
        ['ssh-key', 'droplet'],
      );
      assert.is(ledger.resources[1]!.id, edge.id);
      assert.is(ledger.resources[1]!.find.tag, 'innisfree:web');
      const reopened = await ResourceLedger.open(path, 'web');
      await h.provider.destroyEdge('web', { emit: h.events.emit, signal: h.signal, ledger: reopened });
      assert.equal(accountOf(h.fake), EMPTY);
      assert.not.ok(existsSync(path));
    }),
  ),
);

const S = suite('issue 10 cases 2-3: an interrupt removes what the run made');

for (const reason of ['SIGINT', 'SIGTERM']) {
  S(`${reason} while the droplet is activating: droplet and key are removed, InterruptedError (130)`, () =>
    withLedger((path) =>
      withFake({ activation: { afterPolls: 1_000_000 } }, async (h) => {
        const controller = new AbortController();
        const pending = up(h, testSpec(), path, controller.signal);
        while (h.fake.calls('GET /v2/droplets/{droplet_id}').length < 3) await new Promise((r) => setTimeout(r, 1));
        controller.abort(new InterruptedError(`interrupted by ${reason}`));
        const error = await rejection(pending);
        assert.instance(error, InterruptedError);
        assert.is(error.exitCode, 130);
        assert.equal(accountOf(h.fake), EMPTY);
        assert.not.ok(existsSync(path));
      }),
    ),
  );

  S(`${reason} during the tag look-up after an ambiguous create (that happened): the droplet is removed`, () =>
    withLedger((path) =>
      withFake({}, async (h) => {
        h.fake.inject({ method: 'POST', path: '/v2/droplets', when: 'after', response: { kind: 'server-error' } });
        const controller = new AbortController();
        // The first look-up by tag after the 500 answers slowly; the interrupt lands while it is in flight.
        h.fake.inject({ method: 'GET', path: '/v2/droplets', skip: 1, response: { kind: 'delay', ms: 300 } });
        const pending = up(h, testSpec(), path, controller.signal);
        while (h.fake.calls('GET /v2/droplets').length < 2) await new Promise((r) => setTimeout(r, 1));
        controller.abort(new InterruptedError(`interrupted by ${reason}`));
        const error = await rejection(pending);
        assert.instance(error, InterruptedError);
        assert.equal(accountOf(h.fake), EMPTY);
        assert.ok(
          h.events.events.some(
            (e) =>
              e.type === 'log' && /removed droplet \d+ \(made by this run, which was interrupted\)/.test(e.message),
          ),
        );
      }),
    ),
  );
}

const D = suite('issue 10 case 4: never two droplets for a tunnel');

D('a create whose answer comes late (after the look-ups and a second POST) leaves one droplet, the one up uses', () =>
  withLedger((path) =>
    withFake({ timeoutMs: 300 }, async (h) => {
      // Lands when the 4th request after it arrives: after the two look-ups by tag and the second POST.
      h.fake.inject({ method: 'POST', path: '/v2/droplets', response: { kind: 'lost', landAfterRequests: 4 } });
      const { edge } = await up(h, testSpec(), path);
      assert.is(h.fake.calls('POST /v2/droplets').length, 2, 'posted again after the look-ups found nothing');
      assert.equal(
        [...h.fake.state.droplets.keys()].map(String),
        [edge.id],
        'the late one is destroyed, the one in use kept',
      );
      assert.ok(
        h.events
          .warnings()
          .some((w) =>
            new RegExp(
              /also carries tag innisfree:web \(a create whose answer was lost landed after all\): /.source +
                /destroying it, keeping droplet/.source,
            ).test(w),
          ),
      );
      await h.provider.destroyEdge('web', {
        emit: h.events.emit,
        signal: h.signal,
        ledger: await ResourceLedger.open(path, 'web'),
      });
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

D('a create that lands late and then a failure: both droplets are removed', () =>
  withLedger((path) =>
    withFake({ timeoutMs: 300, activation: { afterPolls: 1_000_000 } }, async (h) => {
      h.fake.inject({ method: 'POST', path: '/v2/droplets', response: { kind: 'lost', landAfterRequests: 4 } });
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /did not become active/);
      assert.equal(accountOf(h.fake), EMPTY);
    }),
  ),
);

D('two droplets found for a tunnel (--keep before): the one local state records is kept', () =>
  withFake({}, async (h) => {
    const make = () =>
      h.fake.state.createDroplet({
        name: 'innisfree-web',
        region: 'nyc3',
        size: 's-1vcpu-1gb',
        image: 'debian-12-x64',
        tags: ['innisfree', 'innisfree:web'],
      });
    const older = await make();
    h.fake.state.advance(older);
    h.clock.advance(60_000);
    const recorded = await make();
    h.fake.state.advance(recorded);
    const { edge } = await h.provider.ensureEdge({
      spec: testSpec({ keep: true }),
      identity: testIdentity(),
      emit: h.events.emit,
      signal: h.signal,
      recordedEdgeId: String(recorded.id),
    });
    assert.is(edge.id, String(recorded.id));
    assert.equal([...h.fake.state.droplets.keys()], [recorded.id]);
    assert.ok(
      h.events
        .warnings()
        .some((w) =>
          new RegExp(`destroying droplet ${older.id}, keeping ${recorded.id} \\(the one local state records\\)`).test(
            w,
          ),
        ),
    );
  }),
);

const T = suite('issue 10 case 5: throttling is waited out within the phase budget');

T('twelve 429s (retry-after 30 s) on the activation polls: waited out, the edge comes up', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      const throttled = h.fake.inject({
        method: 'GET',
        path: /^\/v2\/droplets\/\d+$/,
        times: 12,
        response: { kind: 'rate-limit', retryAfterSeconds: 30 },
      });
      const started = h.clock.now();
      const { edge } = await up(h, testSpec(), path);
      assert.is(throttled.hits, 12);
      assert.is(edge.status, 'active');
      assert.ok(h.clock.now() - started >= 360_000, 'the retry-after waits were honoured');
      assert.is(h.fake.state.droplets.size, 1);
    }),
  ),
);

T('429s beyond the activation budget: exit 3, one line, and the cleanup says what really happened', () =>
  withLedger((path) =>
    withFake({}, async (h) => {
      h.fake.inject({
        method: 'GET',
        path: /^\/v2\/droplets\/\d+$/,
        times: Infinity,
        response: { kind: 'rate-limit', retryAfterSeconds: 30 },
      });
      const error = await rejection(up(h, testSpec(), path));
      assertProviderFailure(error, /429 too_many_requests after \d+ attempts over \d+ s/);
      // The DELETE answered 204: the droplet is gone, and no warning says otherwise.
      assert.equal(accountOf(h.fake), EMPTY);
      assert.not.ok(
        h.events.warnings().some((w) => /could not (destroy|remove)/.test(w)),
        h.events.warnings().join('\n'),
      );
      assert.ok(
        h.events
          .warnings()
          .some((w) =>
            /DigitalOcean accepted the delete of droplet \d+, but innisfree could not confirm it is gone/.test(w),
          ),
      );
      assert.not.ok(existsSync(path));
    }),
  ),
);

const P = suite('issue 10 case 7: progress while the droplet activates');

P(
  'step progress events carry elapsed time and droplet status, at least every 10 s; the TTY line and JSON show them',
  () =>
    withFake({ activation: { afterPolls: 40 } }, async (h) => {
      await h.provider.ensureEdge({
        spec: testSpec(),
        identity: testIdentity(),
        emit: h.events.emit,
        signal: h.signal,
      });
      const progress = h.events.events.filter((e) => e.type === 'step' && e.status === 'progress') as Array<{
        title: string;
        detail: string;
      }>;
      assert.ok(progress.length >= 10, `${progress.length} progress events`);
      for (const p of progress) assert.match(p.detail, /^\d+ s, droplet (new|active)$/);
      const seconds = progress.map((p) => Number(/^(\d+)/.exec(p.detail)![1]));
      for (let i = 1; i < seconds.length; i++)
        assert.ok(seconds[i]! - seconds[i - 1]! <= 15, `gap ${seconds[i - 1]} → ${seconds[i]}`);
      assert.match(progress[0]!.title, /^Wait for droplet \d+ to be active$/);

      const out: string[] = [];
      const sink = { write: (chunk: string) => out.push(chunk) } as unknown as NodeJS.WritableStream;
      const tty = createRenderer('tty', sink, sink);
      tty.emit({ type: 'step', id: 'edge.active', status: 'start', title: progress[0]!.title });
      tty.emit({
        type: 'step',
        id: 'edge.active',
        status: 'progress',
        title: progress[0]!.title,
        detail: progress[2]!.detail,
      });
      tty.close();
      assert.ok(
        out.some((c) => c.includes(`${progress[0]!.title} (${progress[2]!.detail})`) && !c.includes('\n')),
        out.join('|'),
      );
      const lines: string[] = [];
      const json = createRenderer(
        'json',
        { write: (c: string) => lines.push(c) } as unknown as NodeJS.WritableStream,
        sink,
      );
      for (const p of progress)
        json.emit({ type: 'step', id: 'edge.active', status: 'progress', title: p.title, detail: p.detail });
      assert.is(lines.length, progress.length);
      assert.match(lines[0]!, /"status":"progress".*"detail":"\d+ s, droplet new"/);
    }),
);

F.run();
S.run();
P.run();
D.run();
T.run();
