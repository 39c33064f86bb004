// Bad input and a broken environment (issue 11): each case is one line with what, why and what to do, and exit 2
// (input) or 9 (environment), never exit 1 "internal error"; nothing is left behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { configFile, stateRoot, tunnelPaths } from '../../src/state/paths.js';
import { unresolvedDestination } from '../../src/home/destination-check.js';
import { UsageError } from '../../src/lib/errors.js';
import { envLayer, fileLayer, flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { type CliResult, runCli } from '../helpers/cli.js';
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
    assert.match(error.message, new RegExp(`^--destination: "${destination.replace(/\./g, '\\.')}" is not a valid IPv4 address`), destination);
  }
  for (const destination of ['192.168.1.20', 'nas.lan', 'host-1.example.com', '1password.lan', 'fd00::1', 'none']) {
    assert.is(resolveTunnelSpec([flagLayer({ ports: '443', destination })]).destination, destination);
  }
});

destinations('the CLI refuses them with exit 2 and one line', async () => {
  await withDir(async (dir) => {
    assertOneLine(await runCli(['plan', '--ports', '443', '--destination', '999.1.1.1'], isolatedEnv(dir)), 2, /--destination: "999\.1\.1\.1" is not a valid IPv4 address/);
  });
});

destinations('a host name that does not resolve is reported as such', async () => {
  const notFound = async (): Promise<never> => {
    throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
  };
  assert.match(String(await unresolvedDestination('nas.invalid', notFound)), /^the destination "nas\.invalid" does not resolve here \(ENOTFOUND\)/);
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
  const error = usageError(() => resolveTunnelSpec([flagLayer({ ports: '443', provider: 'local' }), fileLayer('web.json', { region: 'ams3' })]));
  assert.match(error.message, /^web\.json: region: only the digitalocean provider/, 'a tunnel file is the tunnel\'s own');
});

applies('--ipv6-pool without --ipv6 is refused', () => {
  const error = usageError(() => resolveTunnelSpec([flagLayer({ ports: '443', ipv6Pool: 'fd00:1:2::/48' })]));
  assert.match(error.message, /^--ipv6-pool: an IPv6 pool applies only to a tunnel with --ipv6$/);
  assert.is(resolveTunnelSpec([flagLayer({ ports: '443', ipv6: true, ipv6Pool: 'fd00:1:2::/48' })]).ipv6Pool, 'fd00:1:2::/48');
});

applies('an INNISFREE_* variable set but empty is refused', () => {
  const error = usageError(() => envLayer({ INNISFREE_DESTINATION: '' }));
  assert.match(error.message, /^INNISFREE_DESTINATION is set but empty$/);
});

applies('the CLI: --token-file and --cloud-firewall with --provider local, --file \'\', INNISFREE_DESTINATION= exit 2', async () => {
  await withDir(async (dir) => {
    const env = isolatedEnv(dir);
    const local = ['--provider', 'local', '--ports', '8080'];
    assertOneLine(await runCli(['plan', ...local, '--region', 'ams3'], env), 2, /^innisfree: --region: only the digitalocean provider has droplet settings/);
    assertOneLine(await runCli(['plan', ...local, '--token-file', '/run/token'], env), 2, /^innisfree: --token-file: only the digitalocean provider uses an API token/);
    assertOneLine(await runCli(['up', ...local, '--cloud-firewall'], env), 2, /^innisfree: --cloud-firewall: only the digitalocean provider has cloud firewalls/);
    assertOneLine(await runCli(['plan', '--ports', '443', '--ipv6-pool', 'fd00:1:2::/48'], env), 2, /^innisfree: --ipv6-pool: an IPv6 pool applies only/);
    assertOneLine(await runCli(['plan', '--ports', '443', '--file', ''], env), 2, /^innisfree: --file: needs the path of a tunnel JSON file, got an empty value/);
    assertOneLine(await runCli(['plan', '--ports', '443'], { ...env, INNISFREE_DESTINATION: '' }), 2, /^innisfree: INNISFREE_DESTINATION is set but empty/);
    assert.not.ok(existsSync(join(dir, 'state')), 'nothing was created');
  });
});

applies.run();

// --- item 9
const relative = suite('bad input: a relative state directory');

relative('INNISFREE_STATE_DIR, XDG_STATE_HOME and XDG_CONFIG_HOME relative to the working directory are made absolute', () => {
  assert.is(stateRoot({ INNISFREE_STATE_DIR: 'rel/state' }), resolve(process.cwd(), 'rel/state'));
  assert.is(stateRoot({ INNISFREE_STATE_DIR: './s/../t' }), resolve(process.cwd(), 't'));
  assert.is(stateRoot({ XDG_STATE_HOME: 'xs' }), resolve(process.cwd(), 'xs', 'innisfree'));
  assert.is(configFile({ XDG_CONFIG_HOME: 'xc' }), resolve(process.cwd(), 'xc', 'innisfree', 'config.json'));
  assert.ok(isAbsolute(tunnelPaths(stateRoot({ INNISFREE_STATE_DIR: 'rel' }), 'web').edgeFlake));
});

relative.run();
