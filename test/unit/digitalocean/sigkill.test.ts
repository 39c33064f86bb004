// Issue 10: `up` SIGKILLed right after each create (droplet, SSH key, firewall, DNS record) took effect, before its
// answer arrived; then `up` again and `down`: nothing is left in the account. The killed run is a real child
// process (test/helpers/do-up-child.ts) running the DigitalOcean half of up with the tunnel's ledger.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { downCommand } from '../../../src/commands/down.js';
import { ResourceLedger } from '../../../src/state/resources.js';
import { accountOf, testIdentity, testSpec, withFake } from '../../helpers/do.js';
import { makeTempDir } from '../../helpers/tmp.js';

const child = fileURLToPath(new URL('../../helpers/do-up-child.ts', import.meta.url));
const FLAGS = { name: 'web', dns: 'web.example.com' };

const creates = [
  { what: 'SSH key', path: '/v2/account/keys', landed: (a: ReturnType<typeof accountOf>) => a.keys > 0 },
  { what: 'droplet', path: '/v2/droplets', landed: (a: ReturnType<typeof accountOf>) => a.droplets > 0 },
  { what: 'firewall', path: '/v2/firewalls', landed: (a: ReturnType<typeof accountOf>) => a.firewalls > 0 },
  {
    what: 'DNS record',
    path: '/v2/domains/example.com/records',
    landed: (a: ReturnType<typeof accountOf>) => a.records > 0,
  },
];

const K = suite('issue 10: SIGKILL right after each create, then up and down: nothing left');

for (const create of creates) {
  K(`killed right after the ${create.what} create landed`, () =>
    withFake({ firewall: true, activation: { afterPolls: 0 } }, async (h) => {
      const tmp = makeTempDir('innisfree-sigkill-');
      try {
        h.fake.state.addDomain('example.com');
        const root = join(tmp.path, 'state');
        const dir = join(root, 'web');
        mkdirSync(join(dir, 'ssh'), { recursive: true });
        const ledgerPath = join(dir, 'resources.json');
        const identity = testIdentity();
        writeFileSync(join(dir, 'ssh', 'id_ed25519.pub'), `${identity.sshPublicKey}\n`);
        const input = join(tmp.path, 'input.json');
        writeFileSync(
          input,
          JSON.stringify({ url: h.fake.url, token: h.fake.token, ledger: ledgerPath, flags: FLAGS, identity }),
        );
        // The create takes effect, its answer never comes: the child is killed while it waits for it.
        h.fake.inject({ method: 'POST', path: create.path, response: { kind: 'lost' } });

        const proc = spawn(process.execPath, ['--import', 'tsx', child, input], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          proc.on('close', (_code, signal) => resolve(signal)),
        );
        for (let i = 0; i < 3000 && !create.landed(accountOf(h.fake)); i++) await new Promise((r) => setTimeout(r, 5));
        assert.ok(create.landed(accountOf(h.fake)), `the ${create.what} create landed; child stderr: ${stderr}`);
        proc.kill('SIGKILL');
        assert.is(await exited, 'SIGKILL');

        const ledger = JSON.parse(readFileSync(ledgerPath, 'utf8')) as {
          resources: Array<{ kind: string; state: string }>;
        };
        assert.is(ledger.resources.at(-1)!.state, 'creating', 'recorded before the create, its id never known');

        // up again: what the killed run made is removed first, then the edge is made once.
        const spec = testSpec(FLAGS);
        await h.provider.ensureEdge({
          spec,
          identity,
          emit: h.events.emit,
          signal: h.signal,
          ledger: await ResourceLedger.open(ledgerPath, 'web', h.clock.now),
        });
        assert.equal(accountOf(h.fake), { droplets: 1, keys: 1, firewalls: 1, records: 1 });

        // down: nothing left.
        const env = {
          DIGITALOCEAN_API_URL: h.fake.url,
          DIGITALOCEAN_TOKEN: h.fake.token,
          INNISFREE_STATE_DIR: root,
          XDG_CONFIG_HOME: join(tmp.path, 'config'),
        };
        await downCommand(
          { clock: h.clock, emit: h.events.emit, env, signal: h.signal },
          { name: 'web', flags: {}, json: false },
        );
        assert.equal(accountOf(h.fake), { droplets: 0, keys: 0, firewalls: 0, records: 0 });
        assert.not.ok(existsSync(dir));
      } finally {
        tmp.remove();
      }
    }),
  );
}

K.run();
