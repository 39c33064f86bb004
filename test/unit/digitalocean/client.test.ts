import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DigitalOceanClient } from '../../../src/providers/digitalocean/client.js';
import { DigitalOceanError } from '../../../src/providers/digitalocean/api-errors.js';
import { listAll } from '../../../src/providers/digitalocean/pagination.js';
import { AccountEnvelope, Droplet } from '../../../src/providers/digitalocean/schemas.js';
import { formatError } from '../../../src/lib/errors.js';
import { recorder, virtualClock, withFake } from '../../helpers/do.js';

async function failure(promise: Promise<unknown>): Promise<DigitalOceanError> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, DigitalOceanError);
    return error as DigitalOceanError;
  }
  throw new Error('expected a DigitalOceanError');
}

const R = suite('digitalocean client: retries');

R('a 429 with retry-after is retried after that many seconds', () =>
  withFake({}, async ({ fake, client, clock }) => {
    fake.inject({ method: 'GET', path: '/v2/account', response: { kind: 'rate-limit', retryAfterSeconds: 7 } });
    const { account } = await client.get('/v2/account', AccountEnvelope);
    assert.is(account.email, 'edge-owner@example.com');
    assert.is(fake.calls('GET /v2/account').length, 2);
    assert.ok(clock.sleeps[0]! >= 7000 && clock.sleeps[0]! < 7500, `waited ${clock.sleeps[0]} ms`);
  }),
);

R('a 429 without retry-after waits until ratelimit-reset when the budget is spent', () =>
  withFake({}, async ({ fake, client, clock }) => {
    fake.inject({
      method: 'GET',
      path: '/v2/account',
      response: { kind: 'rate-limit', remaining: 0, resetInSeconds: 40 },
    });
    await client.get('/v2/account', AccountEnvelope);
    assert.ok(clock.sleeps[0]! >= 39_000 && clock.sleeps[0]! <= 41_500, `waited ${clock.sleeps[0]} ms`);
  }),
);

R('a 429 without any hint backs off exponentially with jitter', () =>
  withFake({}, async ({ fake, client, clock }) => {
    fake.inject({ method: 'GET', path: '/v2/account', times: 3, response: { kind: 'rate-limit' } });
    await client.get('/v2/account', AccountEnvelope);
    assert.is(clock.sleeps.length, 3);
    const [a, b, c] = clock.sleeps as [number, number, number];
    assert.ok(a >= 500 && a <= 1000 && b >= 1000 && b <= 2000 && c >= 2000 && c <= 4000, clock.sleeps.join(','));
  }),
);

R('429s that do not stop are waited out for the time budget (5 min per request), then surfaced clearly', () =>
  withFake({}, async ({ fake, client, clock }) => {
    fake.inject({
      method: 'GET',
      path: '/v2/account',
      times: Infinity,
      response: { kind: 'rate-limit', retryAfterSeconds: 10 },
    });
    const started = clock.now();
    const error = await failure(client.get('/v2/account', AccountEnvelope));
    assert.is(error.status, 429);
    assert.ok(fake.calls('GET /v2/account').length > 5, 'not a fixed number of tries');
    assert.ok(
      clock.now() - started <= 300_000 && clock.now() - started > 280_000,
      `waited ${clock.now() - started} ms`,
    );
    assert.match(
      formatError(error),
      /GET \/v2\/account failed with 429 too_many_requests after \d+ attempts over \d+ s: "API Rate limit exceeded\."/,
    );
    assert.match(formatError(error), /hint: .*rate limit/);
  }),
);

R('a rate-limit wait longer than the client accepts is not slept through', () =>
  withFake({}, async ({ fake, client, clock }) => {
    fake.inject({ method: 'GET', path: '/v2/account', response: { kind: 'rate-limit', retryAfterSeconds: 3600 } });
    const error = await failure(client.get('/v2/account', AccountEnvelope));
    assert.is(error.status, 429);
    assert.equal(clock.sleeps, []);
  }),
);

R('5xx on a GET is retried; a persistent 500 is surfaced', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({ method: 'GET', path: '/v2/account', times: 2, response: { kind: 'server-error' } });
    await client.get('/v2/account', AccountEnvelope);
    assert.is(fake.calls('GET /v2/account').length, 3);
    fake.inject({
      method: 'GET',
      path: '/v2/account',
      times: Infinity,
      response: { kind: 'server-error', status: 503 },
    });
    const error = await failure(client.get('/v2/account', AccountEnvelope));
    assert.is(error.status, 503);
    assert.match(error.message, /failed with 503 server_error after 5 attempts: "Server Error"/);
    assert.match(error.hint!, /server-side problem/);
  }),
);

R('an HTML 502 does not crash the parser: retried, then quoted', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({ method: 'GET', path: '/v2/account', response: { kind: 'html-bad-gateway' } });
    await client.get('/v2/account', AccountEnvelope);
    fake.inject({
      method: 'GET',
      path: '/v2/account',
      times: Infinity,
      response: { kind: 'html-bad-gateway', status: 504 },
    });
    const error = await failure(client.get('/v2/account', AccountEnvelope));
    assert.is(error.status, 504);
    assert.match(error.message, /"504 Gateway Time-out"/);
  }),
);

R('other 4xx are not retried', () =>
  withFake({}, async ({ fake, client }) => {
    const error = await failure(client.get('/v2/droplets/999', Droplet));
    assert.ok(error.notFound);
    assert.is(fake.calls('GET /v2/droplets/{droplet_id}').length, 1);
    assert.is(error.apiMessage, 'The resource you requested could not be found.');
  }),
);

R('a create (POST) is not repeated after a 500: the error says it may have gone through', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({ method: 'POST', path: '/v2/account/keys', times: Infinity, response: { kind: 'server-error' } });
    const error = await failure(
      client.post('/v2/account/keys', { name: 'k', public_key: 'ssh-ed25519 AAAA' }, AccountEnvelope),
    );
    assert.is(error.ambiguous, true);
    assert.is(fake.calls('POST /v2/account/keys').length, 1);
  }),
);

R('a create refused with 429 or "Please try again" is repeated (nothing was made)', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({ method: 'POST', path: '/v2/tags', response: { kind: 'rate-limit', retryAfterSeconds: 1 } });
    fake.inject({ method: 'POST', path: '/v2/tags', response: { kind: 'please-try-again' } });
    await client.request('POST', '/v2/tags', { body: { name: 'innisfree' } });
    assert.is(fake.calls('POST /v2/tags').length, 3);
  }),
);

R('a dropped connection on a GET is retried', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({ method: 'GET', path: '/v2/account', response: { kind: 'drop-connection' } });
    await client.get('/v2/account', AccountEnvelope);
    assert.is(fake.calls('GET /v2/account').length, 2);
  }),
);

R('a slow answer times out and is retried', () =>
  withFake({ timeoutMs: 150 }, async ({ fake, client }) => {
    fake.inject({ method: 'GET', path: '/v2/account', response: { kind: 'delay', ms: 600 } });
    await client.get('/v2/account', AccountEnvelope);
    assert.is(fake.calls('GET /v2/account').length, 2);
  }),
);

const A = suite('digitalocean client: auth, bodies, pagination');

A('a bad token: 401 with a message that names the problem and never the token', async () => {
  await withFake({}, async ({ fake }) => {
    const events = recorder();
    const bad = new DigitalOceanClient({
      token: 'dop_v1_not-the-right-one',
      baseUrl: fake.url,
      clock: virtualClock(),
      emit: events.emit,
    });
    const error = await failure(bad.get('/v2/account', AccountEnvelope));
    assert.is(error.status, 401);
    assert.match(formatError(error), /DigitalOcean rejected the API token/);
    assert.not.match(`${formatError(error)}${JSON.stringify(error)}${events.text()}`, /not-the-right-one/);
    assert.is(fake.calls('GET /v2/account').length, 1);
  });
});

A('an unexpected body is a ProviderError, not a crash', () =>
  withFake({}, async ({ fake, client }) => {
    fake.inject({
      method: 'GET',
      path: '/v2/account',
      response: { kind: 'raw', status: 200, body: '{"account": 42}', headers: { 'content-type': 'application/json' } },
    });
    const error = await client.get('/v2/account', AccountEnvelope).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.match(String((error as Error | undefined)?.message), /unexpected body \(account:/);
    assert.is((error as { exitCode?: number }).exitCode, 3);
  }),
);

A('pagination follows links.pages.next with per_page=200 over more than 200 droplets', () =>
  withFake({}, async ({ fake, client }) => {
    fake.state.account.droplet_limit = 1000;
    const key = fake.state.addSshKey(
      'k',
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvXV7sdHMmIdYSgapGeO2mrN7DDA81ssr+m1v2lpeAy k',
    );
    for (let i = 0; i < 450; i++) {
      await fake.state.createDroplet({
        name: `d-${i}`,
        region: 'nyc3',
        size: 's-1vcpu-1gb',
        image: 'debian-12-x64',
        ssh_keys: [key.fingerprint],
        tags: i % 10 === 0 ? ['other'] : ['innisfree'],
      });
    }
    const all = await listAll(client, '/v2/droplets', 'droplets', Droplet, { tag_name: 'innisfree' });
    assert.is(all.length, 405);
    assert.is(new Set(all.map((d) => d.id)).size, 405);
    const pages = fake.calls('GET /v2/droplets');
    assert.is(pages.length, 3);
    assert.equal(
      pages.map((p) => [p.query.page ?? '1', p.query.per_page, p.query.tag_name]),
      [
        ['1', '200', 'innisfree'],
        ['2', '200', 'innisfree'],
        ['3', '200', 'innisfree'],
      ],
    );
  }),
);

A('single-page lists with links {} and links {pages: {}} both end the walk', async () => {
  for (const singlePageLinks of ['empty', 'pages'] as const) {
    await withFake({ singlePageLinks }, async ({ fake, client }) => {
      const keys = await listAll(client, '/v2/account/keys', 'ssh_keys', Droplet);
      assert.equal(keys, []);
      assert.is(fake.calls('GET /v2/account/keys').length, 1);
    });
  }
});

R.run();
A.run();
