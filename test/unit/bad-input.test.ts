// Bad input and a broken environment (issue 11): each case is one line with what, why and what to do, and exit 2
// (input) or 9 (environment), never exit 1 "internal error"; nothing is left behind.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { unresolvedDestination } from '../../src/home/destination-check.js';
import { UsageError } from '../../src/lib/errors.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
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
