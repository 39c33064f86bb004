// A local edge is keyed by tunnel name alone (/run/innisfree/local/<name>), while the lock is per state directory.
// `up` (and `down`) of the same name from another state directory must leave a live tunnel's edge alone: refuse
// with one line and the busy exit code, keep nothing of its own, and the first tunnel keeps serving.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runtimePaths } from '../../src/providers/local/layout.js';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runCli } from '../helpers/cli.js';
import { assertNoHostCollision, localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startUp } from '../helpers/up-process.js';

const unavailable = localProviderUnavailable();
const F = suite('foreign edge: another state directory never breaks a live tunnel');

/** The only "innisfree:" line of a failed command's stderr (progress lines come before it). */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('innisfree:'));
}

F('up and down of the same name from another state directory are refused; the first tunnel keeps serving', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = makeTempDir('innisfree-foreign-');
  const local = join(dir.path, 'local');
  const envA = {
    INNISFREE_STATE_DIR: join(dir.path, 'a'),
    INNISFREE_LOCAL_DIR: local,
    XDG_CONFIG_HOME: join(dir.path, 'config'),
  };
  const envB = { ...envA, INNISFREE_STATE_DIR: join(dir.path, 'b') };
  const name = randomTunnelName();
  const token = `hello-${name}`;
  const http: Server = createServer((_req, res) => res.end(`${token}\n`));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  const provider = new LocalProvider({ env: envA, runtimeDir: local });
  const first = startUp(['--provider', 'local', '--name', name, '--ports', `8080:${port}/tcp`], envA);
  const get = async (ipv4: string): Promise<string> => {
    const result = await provider.runInClient(name, ['curl', '-sS', '--max-time', '5', `http://${ipv4}:8080/`], {
      timeoutMs: 15_000,
    });
    return result.exitCode === 0 ? result.stdout : `curl failed (${result.exitCode}): ${result.stderr.trim()}`;
  };
  try {
    const ready = await first.ready();
    const ipv4 = String(ready.ipv4);
    assert.is(await get(ipv4), `${token}\n`);
    // The try-it line says who the client is and which ranges the edge uses; none meets this host's networks.
    const local = (await provider.localEdge(name))!;
    assertNoHostCollision(local);
    assert.is(
      ready.tryItNote,
      `the client is ${local.layout.addresses.client} in ${local.layout.namespaces.client}; addresses from ` +
        `${local.layout.blocks.public}.0/24 (public), ${local.layout.blocks.link}.0/24 (home link), ` +
        `${local.layout.blocks.client}.0/24 (clients), which no address or route of this host uses`,
    );
    const edgeBefore = await provider.findEdge(name);

    const second = await runCli(['up', '--provider', 'local', '--name', name, '--ports', `8080:${port}/tcp`], envB);
    assert.is(second.code, 8, second.stderr);
    const lines = errorLines(second.stderr);
    assert.is(lines.length, 1, second.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `local edge of tunnel "${name}" .* belongs to the state directory ${envA.INNISFREE_STATE_DIR}, not to ` +
          `${envB.INNISFREE_STATE_DIR}; it was left untouched \\(hint: use another --name`,
      ),
    );
    assert.not.ok(existsSync(envB.INNISFREE_STATE_DIR), 'the refused up left no state directory');

    // `down` there, with no state of its own, does not take the live edge either.
    const down = await runCli(['down', name, '--provider', 'local'], envB);
    assert.is(down.code, 8, down.stderr);
    assert.is(errorLines(down.stderr).length, 1, down.stderr);
    assert.match(down.stderr, /belongs to the state directory/);
    assert.not.ok(existsSync(envB.INNISFREE_STATE_DIR), 'the refused down left no state directory');

    assert.equal(await provider.findEdge(name), edgeBefore, 'the same edge, still running');
    assert.is(first.child.exitCode, null, 'the first up still runs');
    assert.is(await get(ipv4), `${token}\n`, 'the first tunnel still serves');
    assert.is(await first.stop('SIGTERM'), 0, first.stderr());
    assert.is(await provider.findEdge(name), undefined, 'the first up removed its own edge');
  } finally {
    await first.stop('SIGKILL');
    await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
    http.close();
    dir.remove();
  }
});

F('an edge being made by another process is refused; a half-made one whose maker died is replaced', async () => {
  if (unavailable) return console.log(`  SKIPPED: ${unavailable}`);
  const dir = makeTempDir('innisfree-foreign-');
  const local = join(dir.path, 'local');
  const env = {
    INNISFREE_STATE_DIR: join(dir.path, 'state'),
    INNISFREE_LOCAL_DIR: local,
    XDG_CONFIG_HOME: join(dir.path, 'config'),
  };
  const name = randomTunnelName();
  const provider = new LocalProvider({ env, runtimeDir: local });
  const paths = runtimePaths(local, name);
  const up = () => startUp(['--provider', 'local', '--name', name, '--ports', '18082/tcp'], env);
  let second: ReturnType<typeof up> | undefined;
  try {
    // Another process (this test stands in for it) is making the edge: no record yet, its pid in creating.pid.
    mkdirSync(paths.dir, { recursive: true });
    writeFileSync(paths.creating, `${process.pid}\n`);
    const refused = await runCli(['up', '--provider', 'local', '--name', name, '--ports', '18082/tcp'], env);
    assert.is(refused.code, 8, refused.stderr);
    assert.is(errorLines(refused.stderr).length, 1, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`another innisfree \\(pid ${process.pid}\\) is creating the local edge of tunnel "${name}" right now`),
    );
    assert.ok(existsSync(paths.creating), "the other maker's directory is left alone");

    // The maker died half way: its directory holds nothing live and gives way.
    writeFileSync(paths.creating, '999999999\n');
    second = up();
    await second.ready();
    assert.not.ok(existsSync(paths.creating), 'the finished edge has no creating.pid');
    assert.is(await second.stop('SIGTERM'), 0, second.stderr());
  } finally {
    await second?.stop('SIGKILL');
    await provider.destroyEdge(name, { emit: () => {}, signal: new AbortController().signal }).catch(() => {});
    dir.remove();
  }
});

F.run();
