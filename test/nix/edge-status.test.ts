// nix/edge-status.sh, the one script behind `innisfree-edge-status` on NixOS edges and local edges: run against a
// stub `wg` that prints a recorded `wg show IF dump`, its output must satisfy the EdgeStatus schema the CLI reads.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EdgeStatus } from '../../src/spec/edge-config.js';
import { repoRoot, run } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

const SCRIPT = join(repoRoot, 'nix', 'edge-status.sh');
const EDGE_PUBLIC = 'gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=';
const HOME_PUBLIC = 'P6RTFeT7ETiDVjl2rRuaLNoUmVvdiWx6s/WuFjuKcVE=';
const OTHER_PUBLIC = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PRIVATE = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const HASH = 'a3f5c0e1d2b4a6978877665544332211ffeeddccbbaa00998877665544332211';

// What `wg show ise-web dump` prints: the interface line (with the private key), then one line per peer.
const DUMP = [
  [PRIVATE, EDGE_PUBLIC, '51820', 'off'],
  [HOME_PUBLIC, '(none)', '203.0.113.7:40912', '10.50.0.2/32', '1763771234', '123456', '654321', 'off'],
  [OTHER_PUBLIC, '(none)', '(none)', '10.50.0.6/32', '0', '0', '0', '25'],
]
  .map((fields) => fields.join('\t'))
  .join('\n');

interface Bed {
  dir: string;
  env: Record<string, string>;
  calls(): string[];
  remove(): void;
}

/** A temp dir with a stub `wg` (recording its arguments) first on PATH. */
function bed(options: { interfaceExists?: boolean } = {}): Bed {
  const tmp = makeTempDir('innisfree-status-');
  const wg = join(tmp.path, 'wg');
  const log = join(tmp.path, 'wg.calls');
  writeFileSync(log, '');
  writeFileSync(join(tmp.path, 'dump'), `${DUMP}\n`);
  writeFileSync(
    wg,
    `#!/bin/sh
echo "$*" >> '${log}'
${options.interfaceExists === false ? `echo "Unable to access interface: No such device" >&2; exit 1` : ''}
case "$3" in
  public-key) echo '${EDGE_PUBLIC}' ;;
  dump) cat '${join(tmp.path, 'dump')}' ;;
  *) echo "stub wg: unexpected arguments: $*" >&2; exit 64 ;;
esac
`,
  );
  chmodSync(wg, 0o755);
  // `ss -Hlnp -t|-u` as iproute2 prints it on an edge: nginx's sockets (master and worker) beside sshd's and the
  // kernel's WireGuard socket (no process).
  const ss = join(tmp.path, 'ss');
  writeFileSync(
    ss,
    `#!/bin/sh
case "$*" in
  *-t*) cat <<'OUT'
LISTEN 0      511          0.0.0.0:443        0.0.0.0:*    users:(("nginx",pid=812,fd=6),("nginx",pid=811,fd=6))
LISTEN 0      511             [::]:443           [::]:*    users:(("nginx",pid=812,fd=7),("nginx",pid=811,fd=7))
LISTEN 0      511          0.0.0.0:80         0.0.0.0:*    users:(("nginx",pid=812,fd=5),("nginx",pid=811,fd=5))
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:(("sshd",pid=700,fd=3))
OUT
  ;;
  *-u*) cat <<'OUT'
UNCONN 0      0            0.0.0.0:19132      0.0.0.0:*    users:(("nginx",pid=812,fd=8))
UNCONN 0      0            0.0.0.0:51820      0.0.0.0:*
OUT
  ;;
esac
`,
  );
  chmodSync(ss, 0o755);
  const hashFile = join(tmp.path, 'config-hash');
  writeFileSync(hashFile, `${HASH}\n`);
  return {
    dir: tmp.path,
    env: {
      PATH: `${tmp.path}:${process.env.PATH}`,
      INNISFREE_EDGE_NAME: 'web',
      // `lo` exists and is up in every namespace: the script reads its flags from /sys.
      INNISFREE_EDGE_INTERFACE: 'lo',
      INNISFREE_EDGE_FORWARDING: 'nginx',
      INNISFREE_EDGE_HASH_FILE: hashFile,
      INNISFREE_EDGE_FORWARDER_CHECK: 'true',
    },
    calls: () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean),
    remove: tmp.remove,
  };
}

function status(env: Record<string, string>) {
  const result = run('bash', [SCRIPT], { env });
  return { ...result, json: result.status === 0 ? (JSON.parse(result.stdout) as unknown) : undefined };
}

const S = suite('edge status script');

S('a live edge: key, handshakes, transfer, config hash, forwarder; valid EdgeStatus', () => {
  const b = bed();
  try {
    const result = status(b.env);
    assert.is(result.status, 0, result.stderr);
    const parsed = EdgeStatus.parse(result.json);
    assert.equal(parsed, {
      name: 'web',
      configHash: HASH,
      wireguard: {
        interface: 'lo',
        publicKey: EDGE_PUBLIC,
        up: true,
        peers: [
          {
            publicKey: HOME_PUBLIC,
            endpoint: '203.0.113.7:40912',
            latestHandshake: 1763771234,
            rxBytes: 123456,
            txBytes: 654321,
          },
          { publicKey: OTHER_PUBLIC, endpoint: null, latestHandshake: 0, rxBytes: 0, txBytes: 0 },
        ],
      },
      // The ports nginx has bound, once per protocol whatever the family; not sshd's or WireGuard's.
      forwarder: {
        kind: 'nginx',
        active: true,
        listening: [
          { protocol: 'tcp', port: 80 },
          { protocol: 'tcp', port: 443 },
          { protocol: 'udp', port: 19132 },
        ],
      },
    });
    assert.is(result.stdout.split('\n').filter(Boolean).length, 1, 'one line of JSON');
  } finally {
    b.remove();
  }
});

S('never reads or prints the private key', () => {
  const b = bed();
  try {
    const result = status(b.env);
    assert.not.ok(result.stdout.includes(PRIVATE));
    assert.not.ok(result.stderr.includes(PRIVATE));
    assert.not.ok(
      b.calls().some((c) => c.includes('private-key')),
      'no `wg show IF private-key`',
    );
  } finally {
    b.remove();
  }
});

S('no interface yet, no hash, forwarder down: nulls and false, still valid', () => {
  const b = bed({ interfaceExists: false });
  try {
    const result = status({
      ...b.env,
      INNISFREE_EDGE_INTERFACE: 'ise-missing',
      INNISFREE_EDGE_FORWARDING: 'nftables',
      INNISFREE_EDGE_HASH_FILE: join(b.dir, 'absent'),
      INNISFREE_EDGE_FORWARDER_CHECK: 'exit 3',
    });
    assert.is(result.status, 0, result.stderr);
    const parsed = EdgeStatus.parse(result.json);
    assert.equal(parsed.wireguard, { interface: 'ise-missing', publicKey: null, up: false, peers: [] });
    assert.is(parsed.configHash, null);
    assert.equal(
      parsed.forwarder,
      { kind: 'nftables', active: false, listening: null },
      'nftables binds nothing to list',
    );
  } finally {
    b.remove();
  }
});

S('an interface that exists but is not up, and a hash file that holds no hash', () => {
  const b = bed();
  try {
    writeFileSync(b.env.INNISFREE_EDGE_HASH_FILE!, 'not a hash\n');
    const result = status({ ...b.env, INNISFREE_EDGE_INTERFACE: 'ise-nosuchlink' });
    const parsed = EdgeStatus.parse(result.json);
    assert.is(parsed.wireguard.up, false, 'no /sys entry: not up');
    assert.is(parsed.wireguard.publicKey, EDGE_PUBLIC);
    assert.is(parsed.configHash, null);
  } finally {
    b.remove();
  }
});

S('refuses a missing or unknown setting with a clear message', () => {
  const b = bed();
  try {
    const { INNISFREE_EDGE_NAME: _omit, ...withoutName } = b.env;
    const missing = status(withoutName);
    assert.is.not(missing.status, 0);
    assert.match(missing.stderr, 'INNISFREE_EDGE_NAME is not set');
    const unknown = status({ ...b.env, INNISFREE_EDGE_FORWARDING: 'haproxy' });
    assert.is(unknown.status, 2);
    assert.match(unknown.stderr, 'must be nginx or nftables');
  } finally {
    b.remove();
  }
});

S.run();
