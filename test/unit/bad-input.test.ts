// Bad input and a broken environment (issue 11): each case is one line with what, why and what to do, and exit 2
// (input) or 9 (environment), never exit 1 "internal error"; nothing is left behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeJsonAtomic } from '../../src/state/files.js';
import { writeTunnelRecord } from '../../src/state/tunnel-record.js';
import { isAbsolute, join, resolve } from 'node:path';
import { configFile, stateRoot, tunnelPaths } from '../../src/state/paths.js';
import { unresolvedDestination } from '../../src/home/destination-check.js';
import { UsageError } from '../../src/lib/errors.js';
import { envLayer, fileLayer, flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { type CliResult, cliPath, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

function isolatedEnv(dir: string): Record<string, string> {
  return { INNISFREE_STATE_DIR: join(dir, 'state'), XDG_CONFIG_HOME: join(dir, 'config'), HOME: dir };
}

/** Exit `code`, and stderr is exactly one line matching `pattern`. */
function assertOneLine(result: CliResult, code: number, pattern: RegExp): void {
  assert.is(result.code, code, `exit ${code} expected, got ${result.code}: ${result.stderr}`);
  assert.is(result.stderr.trim().split('\n').length, 1, `one line expected: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.not.match(result.stderr, /internal error/);
}

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, UsageError);
    return error as UsageError;
  }
  assert.unreachable('expected a UsageError');
  throw new Error('unreachable');
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = makeTempDir('innisfree-bad-input-');
  try {
    await fn(dir.path);
  } finally {
    dir.remove();
  }
}

// --- item 10
const destinations = suite('bad input: destinations');

destinations('dotted numbers that are no IPv4 address are refused at parse', () => {
  for (const destination of ['256.256.256.256', '999.1.1.1', '10.0.0.256', '1.2.3', '192.168.1.1.1']) {
    const error = usageError(() => resolveTunnelSpec([flagLayer({ ports: '443', destination })]));
    assert.match(
      error.message,
      new RegExp(`^--destination: "${destination.replace(/\./g, '\\.')}" is not a valid IPv4 address`),
      destination,
    );
  }
  for (const destination of ['192.168.1.20', 'nas.lan', 'host-1.example.com', '1password.lan', 'fd00::1', 'none']) {
    assert.is(resolveTunnelSpec([flagLayer({ ports: '443', destination })]).destination, destination);
  }
});

destinations('the CLI refuses them with exit 2 and one line', async () => {
  await withDir(async (dir) => {
    assertOneLine(
      await runCli(['plan', '--ports', '443', '--destination', '999.1.1.1'], isolatedEnv(dir)),
      2,
      /--destination: "999\.1\.1\.1" is not a valid IPv4 address/,
    );
  });
});

destinations('a host name that does not resolve is reported as such', async () => {
  const notFound = async (): Promise<never> => {
    throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
  };
  assert.match(
    String(await unresolvedDestination('nas.invalid', notFound)),
    /^the destination "nas\.invalid" does not resolve here \(ENOTFOUND\)/,
  );
  assert.is(await unresolvedDestination('nas.lan', async () => ({ address: '192.168.1.5', family: 4 })), undefined);
  assert.is(await unresolvedDestination('192.168.1.5', notFound), undefined, 'an address is not looked up');
  assert.is(await unresolvedDestination('none', notFound), undefined);
});

destinations.run();

// --- item 11
const applies = suite('bad input: settings that do not apply, empty values');

applies('droplet settings with --provider local are refused, as --reserved-ip and --dns are', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ region: 'ams3' }, /^--region: only the digitalocean provider has droplet settings$/],
    [{ size: 's-1vcpu-2gb' }, /^--size: only the digitalocean provider/],
    [{ image: 'innisfree-edge' }, /^--image: only the digitalocean provider/],
    [{ bootstrap: 'image' }, /^--bootstrap: only the digitalocean provider/],
  ];
  for (const [extra, pattern] of cases) {
    const error = usageError(() => resolveTunnelSpec([flagLayer({ ports: '443', provider: 'local', ...extra })]));
    assert.match(error.message, pattern);
    assert.match(String(error.hint), /drop --\w+ when using --provider local/);
  }
});

applies('a region default in config.json is no error for a local tunnel', () => {
  const defaults = { ...fileLayer('config.json', { region: 'ams3', size: 's-1vcpu-2gb' }), defaults: true };
  assert.is(resolveTunnelSpec([flagLayer({ ports: '443', provider: 'local' }), defaults]).provider, 'local');
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ ports: '443', provider: 'local' }), fileLayer('web.json', { region: 'ams3' })]),
  );
  assert.match(
    error.message,
    /^web\.json: region: only the digitalocean provider/,
    "a tunnel file is the tunnel's own",
  );
});

applies('--ipv6-pool without --ipv6 is refused', () => {
  const error = usageError(() => resolveTunnelSpec([flagLayer({ ports: '443', ipv6Pool: 'fd00:1:2::/48' })]));
  assert.match(error.message, /^--ipv6-pool: an IPv6 pool applies only to a tunnel with --ipv6$/);
  assert.is(
    resolveTunnelSpec([flagLayer({ ports: '443', ipv6: true, ipv6Pool: 'fd00:1:2::/48' })]).ipv6Pool,
    'fd00:1:2::/48',
  );
});

applies('an INNISFREE_* variable set but empty is refused', () => {
  const error = usageError(() => envLayer({ INNISFREE_DESTINATION: '' }));
  assert.match(error.message, /^INNISFREE_DESTINATION is set but empty$/);
});

applies(
  "the CLI: --token-file and --cloud-firewall with --provider local, --file '', INNISFREE_DESTINATION= exit 2",
  async () => {
    await withDir(async (dir) => {
      const env = isolatedEnv(dir);
      const local = ['--provider', 'local', '--ports', '8080'];
      assertOneLine(
        await runCli(['plan', ...local, '--region', 'ams3'], env),
        2,
        /^innisfree: --region: only the digitalocean provider has droplet settings/,
      );
      assertOneLine(
        await runCli(['plan', ...local, '--token-file', '/run/token'], env),
        2,
        /^innisfree: --token-file: only the digitalocean provider uses an API token/,
      );
      assertOneLine(
        await runCli(['up', ...local, '--cloud-firewall'], env),
        2,
        /^innisfree: --cloud-firewall: only the digitalocean provider has cloud firewalls/,
      );
      assertOneLine(
        await runCli(['up', ...local, '--replace-edge'], env),
        2,
        /^innisfree: --replace-edge: only the digitalocean provider replaces an edge/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443', '--image', 'innisfree-edge', '--reserved-ipv6', 'new'], env),
        2,
        /^innisfree: --reserved-ipv6: DigitalOcean gives droplets made from custom images no IPv6/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443', '--reserved-ipv6', '10.0.0.1'], env),
        2,
        /^innisfree: --reserved-ipv6: must be an IPv6 address or "new"/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443', '--ipv6-pool', 'fd00:1:2::/48'], env),
        2,
        /^innisfree: --ipv6-pool: an IPv6 pool applies only/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443', '--file', ''], env),
        2,
        /^innisfree: --file: needs the path of a tunnel JSON file, got an empty value/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443'], { ...env, INNISFREE_DESTINATION: '' }),
        2,
        /^innisfree: INNISFREE_DESTINATION is set but empty/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443'], { ...env, INNISFREE_FILE: '' }),
        2,
        /^innisfree: INNISFREE_FILE: needs the path of a tunnel JSON file, got an empty value/,
      );
      assertOneLine(
        await runCli(['plan', '--ports', '443'], { ...env, INNISFREE_TOKEN_FILE: ' ' }),
        2,
        /^innisfree: INNISFREE_TOKEN_FILE is set but empty/,
      );
      assert.not.ok(existsSync(join(dir, 'state')), 'nothing was created');
    });
  },
);

applies.run();

// --- item 9
const relative = suite('bad input: a relative state directory');

relative(
  'INNISFREE_STATE_DIR, XDG_STATE_HOME and XDG_CONFIG_HOME relative to the working directory are made absolute',
  () => {
    assert.is(stateRoot({ INNISFREE_STATE_DIR: 'rel/state' }), resolve(process.cwd(), 'rel/state'));
    assert.is(stateRoot({ INNISFREE_STATE_DIR: './s/../t' }), resolve(process.cwd(), 't'));
    assert.is(stateRoot({ XDG_STATE_HOME: 'xs' }), resolve(process.cwd(), 'xs', 'innisfree'));
    assert.is(configFile({ XDG_CONFIG_HOME: 'xc' }), resolve(process.cwd(), 'xc', 'innisfree', 'config.json'));
    assert.ok(isAbsolute(tunnelPaths(stateRoot({ INNISFREE_STATE_DIR: 'rel' }), 'web').edgeFlake));
  },
);

relative.run();

// --- items 7 and 8
/** The CLI, killed after `timeoutMs` (then code is null): a hang fails the test instead of stalling the suite. */
function runCliWithin(
  timeoutMs: number,
  args: readonly string[],
  env: Record<string, string>,
  runAs?: number,
): Promise<CliResult> {
  const argv = [cliPath, ...args];
  const [file, fileArgs] =
    runAs === undefined
      ? [process.execPath, argv]
      : ['setpriv', [`--reuid=${runAs}`, `--regid=${runAs}`, '--clear-groups', '--', process.execPath, ...argv]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, fileArgs, {
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const files = suite('bad input: --file and config.json are small regular files');

files('a FIFO, /dev/zero and a directory as --file: exit 2 at once, one line saying what it is', async () => {
  await withDir(async (dir) => {
    const env = isolatedEnv(dir);
    const fifo = join(dir, 'tunnel.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const command of ['plan', 'up']) {
      const fromFifo = await runCliWithin(10_000, [command, '--ports', '443', '--file', fifo], env);
      assertOneLine(
        fromFifo,
        2,
        new RegExp(
          `^innisfree: --file ${fifo}: it is a FIFO, not a regular file \\(hint: give the path of a tunnel JSON file`,
        ),
      );
    }
    assertOneLine(
      await runCliWithin(10_000, ['plan', '--ports', '443', '--file', '/dev/zero'], env),
      2,
      /^innisfree: --file \/dev\/zero: it is a device, not a regular file/,
    );
    assertOneLine(
      await runCliWithin(10_000, ['plan', '--ports', '443', '--file', dir], env),
      2,
      /: it is a directory, not a regular file/,
    );
    const big = join(dir, 'big.json');
    writeFileSync(big, `{"name":"web","x":"${'a'.repeat(2 * 1024 * 1024)}"}`);
    assertOneLine(
      await runCliWithin(10_000, ['plan', '--ports', '443', '--file', big], env),
      2,
      /: it is \d+ bytes, more than the 1048576 a settings file may have/,
    );
    assert.not.ok(existsSync(join(dir, 'state')), 'nothing was created');
  });
});

files('an unreadable --file or config.json: exit 2 naming it (run as nobody: root reads everything)', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv'))
    return console.log('  SKIPPED: needs root and setpriv to run as another user');
  await withDir(async (dir) => {
    chmodSync(dir, 0o755);
    const secret = join(dir, 'tunnel.json');
    writeFileSync(secret, '{"name":"web"}', { mode: 0o600 });
    const env = { ...isolatedEnv(dir), HOME: dir };
    assertOneLine(
      await runCliWithin(10_000, ['plan', '--ports', '443', '--file', secret], env, 65534),
      2,
      new RegExp(`^innisfree: --file ${secret}: permission denied \\(hint: make ${secret} readable`),
    );
    mkdirSync(join(dir, 'config', 'innisfree'), { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, 'config', 'innisfree', 'config.json'), '{}', { mode: 0o600 });
    assertOneLine(
      await runCliWithin(10_000, ['plan', '--ports', '443'], env, 65534),
      2,
      /config\.json: permission denied \(hint: .*config\.json holds the defaults for every tunnel/,
    );
  });
});

const environment = suite('bad input: filesystem errors name the path, never "internal error"');

environment('config.json a directory, XDG_CONFIG_HOME=/dev/null: exit 2', async () => {
  await withDir(async (dir) => {
    const env = isolatedEnv(dir);
    mkdirSync(join(dir, 'config', 'innisfree', 'config.json'), { recursive: true });
    assertOneLine(
      await runCli(['plan', '--ports', '443'], env),
      2,
      /^innisfree: \S+\/config\/innisfree\/config\.json: it is a directory, not a regular file/,
    );
    assertOneLine(
      await runCli(['plan', '--ports', '443'], { ...env, XDG_CONFIG_HOME: '/dev/null' }),
      2,
      /^innisfree: \/dev\/null\/innisfree\/config\.json: \/dev\/null is not a directory/,
    );
  });
});

environment(
  'a state directory that is a file or /dev/null, <state>/NAME a file: exit 9 naming it, for plan, status and down',
  async () => {
    await withDir(async (dir) => {
      const file = join(dir, 'state-file');
      writeFileSync(file, 'not a directory\n');
      for (const root of [file, '/dev/null']) {
        const env = { ...isolatedEnv(dir), INNISFREE_STATE_DIR: root };
        const culprit = new RegExp(
          `${root.replace(/[/.]/g, '\\$&')} is not a directory \\(hint: fix or move ${root.replace(/[/.]/g, '\\$&')} `,
        );
        assertOneLine(await runCli(['plan', '--ports', '443'], env), 9, culprit);
        assertOneLine(await runCli(['status'], env), 9, culprit);
        assertOneLine(await runCli(['status', 'web'], env), 9, culprit);
        assertOneLine(await runCli(['down', 'web', '--provider', 'local'], env), 9, culprit);
      }
      const env = isolatedEnv(dir);
      mkdirSync(join(dir, 'state'));
      writeFileSync(join(dir, 'state', 'web'), 'x\n');
      assertOneLine(
        await runCli(['plan', '--name', 'web', '--ports', '443'], env),
        9,
        /state\/web\/tunnel\.json: \S+\/state\/web is not a directory/,
      );
    });
  },
);

environment('a garbage wireguard/private: exit 2, damaged, naming the file', async () => {
  await withDir(async (dir) => {
    const env = isolatedEnv(dir);
    mkdirSync(join(dir, 'state', 'web', 'wireguard'), { recursive: true });
    writeFileSync(join(dir, 'state', 'web', 'wireguard', 'private'), 'garbage\n');
    assertOneLine(
      await runCli(['plan', '--name', 'web', '--ports', '443'], env),
      2,
      new RegExp(
        /state\/web\/wireguard\/private is damaged: it does not hold a WireGuard private key /.source +
          /\(hint: restore it, or remove it/.source,
      ),
    );
  });
});

environment(
  'garbage SSH keys: exit 2 naming the file; a directory where the lock belongs: exit 9 naming it',
  async () => {
    await withDir(async (dir) => {
      const env = isolatedEnv(dir);
      assert.is((await runCli(['plan', '--name', 'web', '--ports', '443'], env)).code, 0);
      const paths = tunnelPaths(join(dir, 'state'), 'web');
      const good = readFileSync(paths.sshPublic, 'utf8');
      writeFileSync(paths.sshPublic, 'garbage\n');
      assertOneLine(
        await runCli(['plan', '--name', 'web', '--ports', '443'], env),
        2,
        /state\/web\/ssh\/id_ed25519\.pub is damaged: it does not hold an OpenSSH ed25519 key/,
      );
      writeFileSync(paths.sshPublic, good);
      writeFileSync(paths.hostKeyPrivate, 'garbage\n');
      assertOneLine(
        await runCli(['plan', '--name', 'web', '--ports', '443'], env),
        2,
        /state\/web\/ssh\/edge_host_ed25519_key is damaged/,
      );
      mkdirSync(paths.lock);
      assertOneLine(
        await runCli(['down', 'web', '--provider', 'local'], { ...env, INNISFREE_LOCAL_DIR: join(dir, 'local') }),
        9,
        /^innisfree: cannot write \S+\/state\/web\/lock: it is a directory/,
      );
    });
  },
);

environment(
  'INNISFREE_LOCAL_DIR=/dev/null: exit 9 naming it, for list, down and up (which leaves nothing)',
  async () => {
    await withDir(async (dir) => {
      const env = { ...isolatedEnv(dir), INNISFREE_LOCAL_DIR: '/dev/null' };
      assertOneLine(
        await runCli(['list', '--provider', 'local'], env),
        9,
        new RegExp(
          /^innisfree: cannot list \/dev\/null: \/dev\/null is not a directory \(hint: local edges /.source +
            /are recorded under INNISFREE_LOCAL_DIR/.source,
        ),
      );
      assertOneLine(
        await runCli(['down', 'web', '--provider', 'local'], env),
        9,
        /^innisfree: cannot list \/dev\/null: \/dev\/null is not a directory/,
      );
      // up asks before it makes anything: no state directory is left for the refused tunnel.
      const up = await runCli(['up', '--provider', 'local', '--ports', '8080'], env);
      if (up.code === 9 && !/INNISFREE_LOCAL_DIR/.test(up.stderr))
        return console.log(`  SKIPPED: up cannot run here: ${up.stderr.trim()}`);
      assertOneLine(
        up,
        9,
        new RegExp(
          /^innisfree: cannot list \/dev\/null: \/dev\/null is not a directory \(hint: local edges /.source +
            /are recorded under INNISFREE_LOCAL_DIR/.source,
        ),
      );
      assert.not.ok(existsSync(join(dir, 'state')), 'no state directory');
    });
  },
);

environment(
  'INNISFREE_LOCAL_DIR with a space: exit 9 naming it before anything is made (sshd_config cannot hold the paths)',
  async () => {
    await withDir(async (dir) => {
      const runtime = join(dir, 'local edges');
      const env = { ...isolatedEnv(dir), INNISFREE_LOCAL_DIR: runtime };
      const expected = new RegExp(
        `^innisfree: INNISFREE_LOCAL_DIR ${runtime.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} has whitespace or a ` +
          /quote in it, which the local edge's sshd_config cannot hold \(hint: /.source,
      );
      assertOneLine(await runCli(['list', '--provider', 'local'], env), 9, expected);
      const up = await runCli(['up', '--provider', 'local', '--ports', '8080'], env);
      if (up.code === 9 && !/INNISFREE_LOCAL_DIR/.test(up.stderr))
        return console.log(`  SKIPPED: up cannot run here: ${up.stderr.trim()}`);
      assertOneLine(up, 9, expected);
      assert.not.ok(existsSync(runtime), 'no runtime directory');
      assert.not.ok(existsSync(join(dir, 'state')), 'no state directory');
    });
  },
);

files.run();
environment.run();

// --- item 12
const damaged = suite('status: damaged state files are reported as damaged');

async function tunnelState(root: string, name: string): Promise<ReturnType<typeof tunnelPaths>> {
  const paths = tunnelPaths(root, name);
  await writeTunnelRecord(
    paths,
    name,
    {
      index: 0,
      pool: '10.50.0.0/16',
      interface: `isf-${name}`,
      edgeInterface: `ise-${name}`,
      homeAddress: '10.50.0.2/30',
      edgeAddress: '10.50.0.1/30',
    },
    new Date(),
  );
  await writeJsonAtomic(paths.status, {
    version: 1,
    name,
    phase: 'stopped',
    pid: null,
    provider: 'local',
    updatedAt: new Date().toISOString(),
    edge: null,
    plannedConfigHash: 'a'.repeat(64),
    deployedConfigHash: 'a'.repeat(64),
    message: null,
    dataPlane: null,
  });
  return paths;
}

damaged(
  'a truncated status.json or tunnel.json: status NAME exits 2 saying which file is damaged; status lists it as ' +
    'damaged',
  async () => {
    await withDir(async (dir) => {
      const root = join(dir, 'state');
      const env = { INNISFREE_STATE_DIR: root, HOME: dir };
      const web = await tunnelState(root, 'web');
      const api = await tunnelState(root, 'api');
      await tunnelState(root, 'ok');
      writeFileSync(web.status, readFileSync(web.status, 'utf8').slice(0, 40));
      writeFileSync(api.tunnel, readFileSync(api.tunnel, 'utf8').slice(0, 30));
      assertOneLine(
        await runCli(['status', 'web'], env),
        2,
        new RegExp(`^innisfree: ${web.status} is damaged \\(hint: .*innisfree down web`),
      );
      assertOneLine(
        await runCli(['status', 'api', '--json'], env),
        2,
        new RegExp(`^innisfree: ${api.tunnel} is damaged`),
      );
      const all = await runCli(['status'], env);
      assert.is(all.code, 0, all.stderr);
      assert.match(all.stdout, /^api: damaged\n {2}damaged +\S+\/api\/tunnel\.json is damaged/m);
      assert.match(all.stdout, /^web: damaged\n {2}damaged +\S+\/web\/status\.json is damaged/m);
      assert.match(all.stdout, /^ok: stopped/m);
      assertOneLine(await runCli(['ip', 'web'], env), 2, new RegExp(`^innisfree: ${web.status} is damaged`));
      const json = JSON.parse((await runCli(['status', '--json'], env)).stdout) as Array<{
        name: string;
        phase: string;
        damaged: string | null;
      }>;
      assert.equal(
        json.map((r) => [r.name, r.phase]),
        [
          ['api', 'damaged'],
          ['ok', 'stopped'],
          ['web', 'damaged'],
        ],
      );
    });
  },
);

damaged('status of something that is no tunnel name is refused before it becomes a path', async () => {
  await withDir(async (dir) => {
    assertOneLine(
      await runCli(['status', '../etc'], isolatedEnv(dir)),
      2,
      /^innisfree: "\.\.\/etc" is not a tunnel name/,
    );
  });
});

damaged.run();

// --- item 13
const minor = suite('bad input: the minor ones');

minor('INNISFREE_PROXY_PROTOCOL=x names the variable; --proxy-protocol x names the flag', async () => {
  const error = usageError(() =>
    resolveTunnelSpec([flagLayer({ ports: '443' }), envLayer({ INNISFREE_PROXY_PROTOCOL: 'x' })]),
  );
  assert.match(error.message, /^INNISFREE_PROXY_PROTOCOL: "x" is not a public TCP port or range$/);
  await withDir(async (dir) => {
    assertOneLine(
      await runCli(['plan', '--ports', '443', '--proxy-protocol', 'x'], isolatedEnv(dir)),
      2,
      /^innisfree: --proxy-protocol: "x" is not a public TCP port or range/,
    );
  });
});

minor('--mtu and --keepalive hints give an example of their own', () => {
  assert.match(String(usageError(() => flagLayer({ mtu: 'x' })).hint), /^pass a whole number, e\.g\. --mtu 1420$/);
  assert.match(
    String(usageError(() => flagLayer({ keepalive: '1.5' })).hint),
    /^pass a whole number, e\.g\. --keepalive 25$/,
  );
  assert.match(
    String(usageError(() => envLayer({ INNISFREE_MTU: 'big' })).hint),
    /^pass a whole number, e\.g\. INNISFREE_MTU=1420$/,
  );
  assert.match(String(usageError(() => flagLayer({ wireguardPort: 'x' })).hint), /e\.g\. --wireguard-port 51820$/);
});

minor('down of a name with no state and no edge exits 2 and creates no state directory', async () => {
  await withDir(async (dir) => {
    const env = { ...isolatedEnv(dir), INNISFREE_LOCAL_DIR: join(dir, 'local') };
    assertOneLine(
      await runCli(['down', 'nosuch', '--provider', 'local'], env),
      2,
      new RegExp(
        /^innisfree: no tunnel named "nosuch": no state in \S+\/state and no edge at local \(hint: /.source +
          /innisfree status lists/.source,
      ),
    );
    assert.not.ok(existsSync(join(dir, 'state')), 'no state directory');
    assert.not.ok(existsSync(join(dir, 'local')), 'no local edge directory');
  });
});

minor('an --address-pool with no room left here is refused by up without leaving a state directory', async () => {
  await withDir(async (dir) => {
    const env = { ...isolatedEnv(dir), INNISFREE_LOCAL_DIR: join(dir, 'local') };
    // 127.0.0.0/8 has routes on every host; a /30 inside it has no free slot.
    const result = await runCli(
      ['up', '--provider', 'local', '--ports', '8080', '--address-pool', '127.0.0.0/30'],
      env,
    );
    if (result.code === 9) return console.log(`  SKIPPED: up cannot run here: ${result.stderr.trim()}`);
    assertOneLine(result, 2, /^innisfree: address pool 127\.0\.0\.0\/30 has no free \/30 left on this host/);
    assert.not.ok(existsSync(join(dir, 'state')), 'no state directory');
  });
});

minor('a token file every user can read is used with a warning naming it and the fix', async () => {
  await withDir(async (dir) => {
    const token = join(dir, 'token');
    // Not a token's shape: the command stops right after reading it, without the network.
    writeFileSync(token, 'not a token\n', { mode: 0o644 });
    chmodSync(token, 0o644);
    const env = { ...isolatedEnv(dir), DIGITALOCEAN_API_URL: 'http://127.0.0.1:9' };
    const open = await runCli(['list', '--token-file', token], env);
    assert.match(
      open.stderr,
      new RegExp(`token file ${token} is open to every user on this machine \\(mode 0644\\).*chmod 600 ${token}`),
    );
    chmodSync(token, 0o600);
    const closed = await runCli(['list', '--token-file', token], env);
    assert.not.match(closed.stderr, /open to every user/);
    assert.is(closed.code, open.code, 'the warning changes nothing else');
    assert.match(closed.stderr, /does not hold a single-line API token/, 'the file was read');
  });
});

minor('a FIFO, /dev/zero or a directory as --token-file: exit 2 at once, before anything reads it', async () => {
  await withDir(async (dir) => {
    const env = isolatedEnv(dir);
    const fifo = join(dir, 'token.fifo');
    execFileSync('mkfifo', [fifo]);
    assertOneLine(
      await runCliWithin(10_000, ['list', '--token-file', fifo], env),
      2,
      new RegExp(`^innisfree: token file ${fifo} is a FIFO, not a regular file`),
    );
    assertOneLine(
      await runCliWithin(10_000, ['list', '--token-file', '/dev/zero'], env),
      2,
      /^innisfree: token file \/dev\/zero is a device, not a regular file/,
    );
    assertOneLine(
      await runCliWithin(10_000, ['down', 'web', '--token-file', dir], env),
      2,
      /is a directory, not a regular file/,
    );
  });
});

minor.run();
