// Secrets never reach a child process: with a DigitalOcean token in the environment of `up`, no process on the
// machine but `up` itself (whose /proc/PID/environ is fixed at exec) has it in its environment or argv — not
// wireguard-go, sshd, nginx, nix-instantiate, ip or wg, whichever `up` started, directly or through the local
// edge's agent.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/provider.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const S = suite('secrets: no child of up inherits the API token');

/** Pids whose environment or command line contains `needle`. */
function processesHolding(needle: string): Array<{ pid: number; comm: string }> {
  const found: Array<{ pid: number; comm: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(join('/proc', entry, 'environ'));
      const cmdline = readFileSync(join('/proc', entry, 'cmdline'));
      if (environ.includes(needle) || cmdline.includes(needle)) {
        found.push({ pid: Number(entry), comm: readFileSync(join('/proc', entry, 'comm'), 'utf8').trim() });
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

S('up --provider local with DIGITALOCEAN_TOKEN set: only up itself holds it', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = makeTempDir('innisfree-secrets-');
  const env = {
    INNISFREE_STATE_DIR: join(dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(dir.path, 'local'),
    XDG_CONFIG_HOME: join(dir.path, 'config'),
  };
  const name = randomTunnelName();
  const token = `dop_v1_${randomBytes(24).toString('hex')}`;
  const accessToken = `dop_v1_${randomBytes(24).toString('hex')}`;
  const provider = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
  const up = startUp(['--provider', 'local', '--name', name, '--ports', '18080/tcp,18053/udp'], {
    ...env,
    DIGITALOCEAN_TOKEN: token,
    DIGITALOCEAN_ACCESS_TOKEN: accessToken,
  });
  try {
    await up.ready();
    for (const secret of [token, accessToken]) {
      const holders = processesHolding(secret).filter((p) => p.pid !== up.child.pid);
      assert.equal(holders, [], `processes holding the token: ${holders.map((p) => `${p.comm}(${p.pid})`).join(', ')}`);
    }
    assert.is(await up.stop('SIGTERM'), 0, up.stderr());
  } finally {
    await up.stop('SIGKILL');
    await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
    dir.remove();
  }
});

S.run();
