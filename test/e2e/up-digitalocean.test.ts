// The DigitalOcean provider's code path end to end: the whole `up` lifecycle (runTunnel with the real SSH, home data
// plane and edge files) against the fake DigitalOcean API, where each "droplet" the API creates is backed by a
// local namespace edge booted from the droplet's own user_data (its pinned host key and authorized key), the way
// our custom image boots from the metadata service. Only the deployer is the local one: deploy-rs needs NixOS.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tunnelDeps } from '../../src/tunnel-deps.js';
import { runSsh } from '../../src/edge/ssh.js';
import { type Context, systemClock, systemExec } from '../../src/lib/context.js';
import { InterruptedError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import { prepareTunnel } from '../../src/prepare.js';
import { createProvider, providerKit } from '../../src/providers/index.js';
import { LocalDeployer } from '../../src/providers/local/local-deployer.js';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runTunnel } from '../../src/run-tunnel.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { FakeDigitalOcean } from '../fake-do/server.js';
import {
  assertNothingLeft,
  footprintOf,
  localProviderUnavailable,
  randomTunnelName,
  specFor,
} from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';

const unavailable = localProviderUnavailable();

/** What our edge image reads from user_data: "#cloud-config" then one JSON object. */
function cloudConfigOf(userData: string | undefined): {
  ssh_keys: { ed25519_private: string; ed25519_public: string };
  ssh_authorized_keys: string[];
} {
  assert.ok(userData?.startsWith('#cloud-config\n'), 'user_data is a cloud-config');
  return JSON.parse(userData!.slice('#cloud-config\n'.length));
}

const D = suite('up: the DigitalOcean code path against the fake API, droplets backed by local edges');

D('create → SSH with the injected host key → deploy → serve → teardown destroys the droplet and the edge', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = makeTempDir('innisfree-do-e2e-');
  const name = randomTunnelName();
  const env = {
    INNISFREE_STATE_DIR: join(dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(dir.path, 'local'),
    XDG_CONFIG_HOME: join(dir.path, 'config'),
  };
  const local = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
  const quiet = { emit: () => {}, signal: new AbortController().signal };
  const http = createServer((_req, res) => res.end(`via-do-${name}\n`));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const httpPort = (http.address() as AddressInfo).port;
  let footprint: ReturnType<typeof footprintOf> | undefined;

  const fake = await FakeDigitalOcean.start({
    activation: { afterPolls: 1 },
    onDropletCreated: async (droplet) => {
      // Boot the "droplet": a local edge with the identity from its user_data.
      const cloud = cloudConfigOf(droplet.userData);
      const { edge } = await local.ensureEdge({
        spec: specFor(name, `8080:${httpPort}/tcp`),
        identity: {
          sshPublicKey: cloud.ssh_authorized_keys[0]!,
          hostKey: { privateKey: cloud.ssh_keys.ed25519_private, publicKey: cloud.ssh_keys.ed25519_public },
        },
        ...quiet,
      });
      return { ipv4: edge.ipv4 };
    },
    onDropletDeleted: async () => {
      const edge = await local.localEdge(name);
      if (edge) footprint = footprintOf(edge);
      await local.destroyEdge(name, quiet);
    },
  });
  const image = fake.state.addCustomImage({ name: 'innisfree-edge', region: 'nyc3', status: 'available' });
  const events: ProgressEvent[] = [];
  const controller = new AbortController();
  try {
    const ctx: Context = {
      exec: systemExec,
      clock: systemClock,
      emit: (event) => events.push(event),
      env: { ...env, DIGITALOCEAN_API_URL: fake.url, DIGITALOCEAN_TOKEN: fake.token },
      signal: controller.signal,
    };
    const spec = resolveTunnelSpec([
      flagLayer({
        name,
        ports: `8080:${httpPort}/tcp`,
        provider: 'digitalocean',
        image: String(image.id),
        size: 's-1vcpu-1gb',
      }),
    ]);
    const { plan, paths, identity } = await prepareTunnel(ctx.exec, env.INNISFREE_STATE_DIR, spec, new Date());
    const provider = await createProvider('digitalocean', ctx);
    const deployer = new LocalDeployer({ exec: ctx.exec, env: ctx.env, ssh: runSsh });
    let readyIp: string | undefined;
    const running = runTunnel(
      ctx,
      tunnelDeps(
        ctx,
        spec,
        paths,
        identity.hostKey.publicKey,
        provider,
        deployer,
        providerKit('digitalocean').bootstrap(spec),
      ),
      {
        spec,
        plan,
        paths,
        identity,
        onReady: (ready) => {
          readyIp = ready.edge.ipv4;
        },
      },
    );
    running.catch(() => {});
    for (let i = 0; i < 1200 && readyIp === undefined; i++) {
      const failed = await Promise.race([
        running.then(
          () => true,
          () => true,
        ),
        new Promise<false>((r) => setTimeout(() => r(false), 100)),
      ]);
      if (failed) break;
    }
    assert.ok(readyIp, `ready; last events: ${JSON.stringify(events.slice(-6))}`);

    // One droplet, tagged, created from the custom image, with the tunnel's key registered by fingerprint.
    const droplets = [...fake.state.droplets.values()];
    assert.is(droplets.length, 1);
    assert.equal(droplets[0]!.tags.sort(), ['innisfree', `innisfree:${name}`]);
    assert.is(readyIp, (await local.findEdge(name))!.ipv4, 'the droplet reports the local edge address');
    const served = await local.runInClient(name, ['curl', '-sS', '--max-time', '5', `http://${readyIp}:8080/`], {
      timeoutMs: 15_000,
    });
    assert.is(served.stdout, `via-do-${name}\n`, served.stderr);

    controller.abort(new InterruptedError('interrupted by SIGTERM'));
    await running;
    assert.is(fake.state.droplets.size, 0, 'the droplet is destroyed');
    assert.is(
      [...fake.state.sshKeys.values()].filter((k) => k.name === `innisfree-${name}`).length,
      0,
      'its SSH key is removed',
    );
    assert.ok(footprint, 'the backing edge was destroyed through the droplet delete');
    assertNothingLeft(footprint!);
    assert.equal(fake.violations, []);
    assert.not.ok(JSON.stringify(events).includes(fake.token), 'the token never reaches an event');
  } finally {
    controller.abort();
    await local.destroyEdge(name, quiet).catch(() => {});
    await fake.stop();
    http.close();
    dir.remove();
  }
});

D.run();
