// Bootstrap: nixos-anywhere argv, the host key staged for --extra-files (modes, removal), the image path, failures.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  type BootstrapContext,
  type BootstrapRequest,
  bootstrapEdge,
  buildNixosAnywhereArgs,
  classifyNixosAnywhereFailure,
  nixosAnywhereLogEvent,
} from '../../src/edge/bootstrap.js';
import type { SshTarget } from '../../src/edge/deployer-port.js';
import { generateSshKeyPair } from '../../src/lib/keys.js';
import { systemClock } from '../../src/lib/context.js';
import { DeployError, EnvironmentError, SshError, UsageError } from '../../src/lib/errors.js';
import type { ProgressEvent } from '../../src/lib/events.js';
import type { StreamExec } from '../../src/lib/stream-exec.js';
import { makeTempDir } from '../helpers/tmp.js';

const S = suite('bootstrap');

S('nixos-anywhere argv: flake #edge, root@IP, the tunnel key, the pinned known_hosts, the extra files', () => {
  const args = buildNixosAnywhereArgs({
    edgeDir: '/var/lib/innisfree/web/edge',
    host: '203.0.113.10',
    sshPort: 22,
    privateKeyPath: '/var/lib/innisfree/web/ssh/id_ed25519',
    knownHostsPath: '/var/lib/innisfree/web/ssh/known_hosts',
    extraFilesDir: '/tmp/innisfree-extra-files-x',
  });
  assert.equal(args, [
    '--flake',
    'path:/var/lib/innisfree/web/edge#edge',
    '--target-host',
    'root@203.0.113.10',
    '-i',
    '/var/lib/innisfree/web/ssh/id_ed25519',
    '-p',
    '22',
    '--ssh-option',
    'UserKnownHostsFile=/var/lib/innisfree/web/ssh/known_hosts',
    '--extra-files',
    '/tmp/innisfree-extra-files-x',
  ]);
  assert.throws(
    () =>
      buildNixosAnywhereArgs({
        edgeDir: '/e',
        host: 'h',
        sshPort: 22,
        privateKeyPath: '/k',
        knownHostsPath: '/a b',
        extraFilesDir: '/x',
      }),
    (error: unknown) => error instanceof UsageError,
  );
});

S('log lines: step headings are info, errors are warnings, the rest debug', () => {
  assert.equal(nixosAnywhereLogEvent('### Uploading install SSH keys ###'), {
    type: 'log',
    level: 'info',
    message: 'Uploading install SSH keys',
    source: 'nixos-anywhere',
  });
  assert.is(nixosAnywhereLogEvent('error: attribute missing')?.level, 'warn');
  assert.is(nixosAnywhereLogEvent("copying path '/nix/store/x'")?.level, 'debug');
});

S('failures are classified with a hint', () => {
  const cases: Array<[string[], typeof SshError | typeof DeployError, RegExp]> = [
    [['root@203.0.113.10: Permission denied (publickey).'], SshError, /key was refused/],
    [['ssh: connect to host 203.0.113.10 port 22: Connection refused'], SshError, /lost the SSH connection/],
    [['Failure unpacking initrd'], DeployError, /ran out of memory/],
    [
      ["error: flake 'path:/e' does not provide attribute 'nixosConfigurations.edge'"],
      DeployError,
      /could not evaluate/,
    ],
    [['something odd', 'error: disko failed'], DeployError, /failed \(exit 1\): error: disko failed/],
  ];
  for (const [lines, type, message] of cases) {
    const error = classifyNixosAnywhereFailure(lines, 1, '203.0.113.10');
    assert.instance(error, type, lines[0]);
    assert.match(error.message, message);
    assert.ok(error.hint);
  }
  assert.match(classifyNixosAnywhereFailure(['Failure unpacking initrd'], 1, 'h').hint!, /s-1vcpu-2gb/);
});

function setup() {
  const dir = makeTempDir('innisfree-bootstrap-');
  const host = generateSshKeyPair('edge-host');
  const hostKeyPrivatePath = join(dir.path, 'edge_host_ed25519_key');
  const hostKeyPublicPath = `${hostKeyPrivatePath}.pub`;
  writeFileSync(hostKeyPrivatePath, host.privateKey, { mode: 0o600 });
  writeFileSync(hostKeyPublicPath, `${host.publicKey}\n`);
  const target: SshTarget = {
    host: '203.0.113.10',
    port: 2222,
    user: 'root',
    privateKeyPath: join(dir.path, 'id_ed25519'),
    knownHostsPath: join(dir.path, 'known_hosts'),
  };
  const waits: SshTarget[] = [];
  const events: ProgressEvent[] = [];
  const request: BootstrapRequest = {
    method: 'nixos-anywhere',
    edgeDir: join(dir.path, 'edge'),
    target,
    hostKeyPrivatePath,
    hostKeyPublicPath,
    emit: (e) => events.push(e),
    signal: new AbortController().signal,
  };
  const ctx = (exec: StreamExec): BootstrapContext => ({
    exec,
    clock: systemClock,
    waitReady: async (t) => {
      waits.push(t);
      return { hostKeyFingerprint: 'SHA256:x' };
    },
  });
  return { dir, host, target, waits, events, request, ctx };
}

S('image: nothing to do but wait for SSH on the edge port', async () => {
  const t = setup();
  try {
    let ran = false;
    await bootstrapEdge(
      t.ctx(async () => ((ran = true), { exitCode: 0 })),
      { ...t.request, method: 'image' },
    );
    assert.not.ok(ran);
    assert.equal(t.waits, [t.target]);
  } finally {
    t.dir.remove();
  }
});

S(
  'nixos-anywhere: pins port 22, waits, stages the host key 0600 under 0755 etc/ssh, removes it, waits again',
  async () => {
    const t = setup();
    try {
      let seen: { dir: string; modes: Record<string, number>; key: string } | undefined;
      const exec: StreamExec = async (file, args, options = {}) => {
        assert.is(file, 'nixos-anywhere');
        const dir = args[args.indexOf('--extra-files') + 1]!;
        const mode = (p: string) => statSync(join(dir, p)).mode & 0o777;
        seen = {
          dir,
          modes: {
            '.': mode('.'),
            etc: mode('etc'),
            'etc/ssh': mode('etc/ssh'),
            key: mode('etc/ssh/ssh_host_ed25519_key'),
            pub: mode('etc/ssh/ssh_host_ed25519_key.pub'),
          },
          key: readFileSync(join(dir, 'etc/ssh/ssh_host_ed25519_key'), 'utf8'),
        };
        options.onStderrLine?.('### Installing NixOS ###');
        return { exitCode: 0 };
      };
      await bootstrapEdge(t.ctx(exec), t.request);
      assert.ok(seen);
      assert.equal(seen!.modes, { '.': 0o700, etc: 0o755, 'etc/ssh': 0o755, key: 0o600, pub: 0o644 });
      assert.is(seen!.key, t.host.privateKey);
      assert.not.ok(existsSync(seen!.dir), 'the staged host key must be removed');
      assert.equal(t.waits, [{ ...t.target, port: 22 }, t.target]);
      const pinned = readFileSync(t.target.knownHostsPath, 'utf8');
      assert.match(
        pinned,
        new RegExp(`^203\\.0\\.113\\.10 ssh-ed25519 ${t.host.publicKey.split(' ')[1]!.replace(/\+/g, '\\+')}$`, 'm'),
      );
      assert.ok(
        t.events.some((e) => e.type === 'log' && e.source === 'nixos-anywhere' && e.message === 'Installing NixOS'),
      );
    } finally {
      t.dir.remove();
    }
  },
);

S(
  'nixos-anywhere: a failure is typed and still removes the staged key; a missing binary is EnvironmentError',
  async () => {
    const t = setup();
    try {
      let dir = '';
      const failing: StreamExec = async (_f, args, options = {}) => {
        dir = args[args.indexOf('--extra-files') + 1]!;
        options.onStderrLine?.('Failure unpacking initrd');
        return { exitCode: 1 };
      };
      try {
        await bootstrapEdge(t.ctx(failing), t.request);
        assert.unreachable();
      } catch (error) {
        assert.instance(error, DeployError);
        assert.match((error as Error).message, /out of memory/);
      }
      assert.not.ok(existsSync(dir));
      assert.is(t.waits.length, 1, 'no wait for the installed system after a failure');

      const missing: StreamExec = async (_f, args) => {
        dir = args[args.indexOf('--extra-files') + 1]!;
        throw Object.assign(new Error('spawn nixos-anywhere ENOENT'), { code: 'ENOENT' });
      };
      try {
        await bootstrapEdge(t.ctx(missing), t.request);
        assert.unreachable();
      } catch (error) {
        assert.instance(error, EnvironmentError);
      }
      assert.not.ok(existsSync(dir));
    } finally {
      t.dir.remove();
    }
  },
);

S.run();
