import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InterruptedError, UsageError } from '../../../src/lib/errors.js';
import { resolveImage, uploadImage, waitImageAvailable } from '../../../src/providers/digitalocean/images.js';
import { DEFAULT_TIMING } from '../../../src/providers/digitalocean/timing.js';
import { createProvider } from '../../../src/providers/index.js';
import { recorder, testIdentity, testSpec, virtualClock, withFake } from '../../helpers/do.js';

const I = suite('digitalocean images');

I('upload then poll until available; the name resolves to the newest available image', () =>
  withFake({}, async ({ fake, client, clock, events }) => {
    fake.state.imagePolls = 3;
    const started = await uploadImage(client, {
      name: 'edge',
      url: 'https://images.example/edge.qcow2.gz',
      region: 'ams3',
    });
    assert.is(started.status, 'NEW');
    const ready = await waitImageAvailable(client, started.id, { timing: DEFAULT_TIMING, clock, emit: events.emit });
    assert.is(ready.status, 'available');
    assert.equal(ready.regions, ['ams3']);
    assert.ok(clock.sleeps.every((ms) => ms === DEFAULT_TIMING.imagePollMs));
    assert.is((await resolveImage(client, 'edge')).id, started.id);
    assert.is((await resolveImage(client, String(started.id))).name, 'edge');
  }),
);

I("a failed import is reported with DigitalOcean's reason", () =>
  withFake({}, async ({ fake, client, clock, events }) => {
    const started = await uploadImage(client, {
      name: 'bad',
      url: 'https://images.example/missing.qcow2',
      region: 'nyc3',
    });
    fake.state.images.get(started.id)!.failImport = true;
    const error = await waitImageAvailable(client, started.id, {
      timing: DEFAULT_TIMING,
      clock,
      emit: events.emit,
    }).catch((e: unknown) => e as Error);
    assert.match(String((error as Error).message), /could not import image \d+: Failed to import/);
  }),
);

I('an upload of a non-http URL is a usage error and sends nothing', () =>
  withFake({}, async ({ fake, client }) => {
    const error = await uploadImage(client, { name: 'x', url: 'file:///etc/passwd', region: 'nyc3' }).catch(
      (e: unknown) => e,
    );
    assert.instance(error, UsageError);
    assert.is(fake.calls('POST /v2/images').length, 0);
  }),
);

const F = suite('provider factory and interruption');

F('unknown providers are usage errors (local is built in: test/unit/local-provider.test.ts)', async () => {
  const ctx = { clock: virtualClock(), emit: recorder().emit, env: {}, signal: new AbortController().signal };
  for (const name of ['hetzner']) {
    const error = await createProvider(name, ctx).catch((e: unknown) => e);
    assert.instance(error, UsageError);
    assert.match((error as UsageError).hint ?? '', /--provider digitalocean/);
  }
  const missing = await createProvider('digitalocean', ctx).catch((e: unknown) => e);
  assert.instance(missing, UsageError);
  assert.match((missing as UsageError).message, /no DigitalOcean API token/);
});

F('createProvider builds a working DigitalOcean provider from the environment', () =>
  withFake({}, async ({ fake, clock }) => {
    const events = recorder();
    const provider = await createProvider('digitalocean', {
      clock,
      emit: events.emit,
      env: { DIGITALOCEAN_API_URL: fake.url, DIGITALOCEAN_ACCESS_TOKEN: fake.token },
      signal: new AbortController().signal,
    });
    assert.is(provider.name, 'digitalocean');
    assert.equal(await provider.listEdges(), []);
  }),
);

F('an interrupt while waiting stops at once and removes what the run made (issue 10, case 2)', () =>
  withFake({ activation: { afterPolls: 1_000_000 } }, async ({ fake, provider, events }) => {
    const controller = new AbortController();
    const pending = provider.ensureEdge({
      spec: testSpec(),
      identity: testIdentity(),
      emit: events.emit,
      signal: controller.signal,
    });
    while (fake.state.droplets.size === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    controller.abort(new InterruptedError('interrupted by SIGINT'));
    const error = await pending.catch((e: unknown) => e);
    assert.instance(error, InterruptedError);
    assert.is(fake.state.droplets.size, 0, 'the droplet this run made is gone');
    assert.is(fake.state.sshKeys.size, 0, 'and the SSH key it registered');
  }),
);

I.run();
F.run();
