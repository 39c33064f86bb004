// The DigitalOcean platform scripts every edge runs at boot (nix/edge/digitalocean.nix): installing the SSH host key
// and root's key from innisfree's cloud-config user data, and configuring the public IPv6 and anchor addresses from
// the metadata. Run here against recorded metadata in temporary directories and a throwaway network namespace.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderUserData } from '../../src/providers/digitalocean/user-data.js';
import { commandExists, repoRoot, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

const HOST_KEY = join(repoRoot, 'nix', 'edge', 'host-key.sh');
const PUBLIC_ADDRESSES = join(repoRoot, 'nix', 'edge', 'public-addresses.sh');
const METADATA_LINK = join(repoRoot, 'nix', 'edge', 'metadata-link.sh');
const ROOT_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAPLRiHD1P3ZHYJOmoeasVYrbWvGdFU14lI/0DWd9p2 innisfree-web';

function keyPair(dir: string, name: string): { private: string; public: string } {
  const path = join(dir, name);
  const result = run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'innisfree-edge', '-f', path]);
  assert.is(result.status, 0, result.stderr);
  return { private: readFileSync(path, 'utf8'), public: readFileSync(`${path}.pub`, 'utf8').trim() };
}

/** The droplet's user data as the CLI writes it: "#cloud-config" and one JSON object. */
function userData(pair: { private: string; public: string }, keys = [ROOT_KEY]): string {
  return `#cloud-config\n${JSON.stringify({
    ssh_keys: { ed25519_private: pair.private, ed25519_public: pair.public },
    ssh_deletekeys: true,
    disable_root: false,
    ssh_authorized_keys: keys,
  })}`;
}

const mode = (path: string): number => statSync(path).mode & 0o777;

// ---
const hostKey = suite('edge platform: host key from user data');

const toolsReady = (): boolean => {
  for (const tool of ['jq', 'ssh-keygen']) {
    if (!commandExists(tool)) return (skipped('host key installation', `${tool} is not installed`), false);
  }
  return true;
};

function runHostKey(dir: string, metadata: unknown) {
  writeFileSync(join(dir, 'v1.json'), JSON.stringify(metadata));
  return run('bash', [HOST_KEY], {
    env: {
      PATH: process.env.PATH,
      INNISFREE_DO_METADATA: join(dir, 'v1.json'),
      INNISFREE_SSH_DIR: join(dir, 'etc-ssh'),
      INNISFREE_ROOT_SSH_DIR: join(dir, 'root-ssh'),
    },
  });
}

hostKey('installs the pair and root key before sshd, removes other host keys, and is idempotent', () => {
  if (!toolsReady()) return;
  const tmp = makeTempDir('innisfree-hostkey-');
  try {
    const pair = keyPair(tmp.path, 'generated');
    const etc = join(tmp.path, 'etc-ssh');
    run('mkdir', ['-p', etc]);
    writeFileSync(join(etc, 'ssh_host_rsa_key'), 'old');
    writeFileSync(join(etc, 'ssh_host_rsa_key.pub'), 'old');
    const metadata = { user_data: userData(pair), public_keys: ['ssh-ed25519 AAAAaccountkey account'] };

    const first = runHostKey(tmp.path, metadata);
    assert.is(first.status, 0, first.stderr);
    assert.match(first.stdout, 'installed the SSH host key');
    assert.is(readFileSync(join(etc, 'ssh_host_ed25519_key'), 'utf8').trim(), pair.private.trim());
    assert.is(mode(join(etc, 'ssh_host_ed25519_key')), 0o600);
    assert.is(readFileSync(join(etc, 'ssh_host_ed25519_key.pub'), 'utf8').trim(), pair.public);
    assert.not.ok(existsSync(join(etc, 'ssh_host_rsa_key')), 'ssh_deletekeys removes other host keys');
    const authorized = join(tmp.path, 'root-ssh', 'authorized_keys');
    assert.is(readFileSync(authorized, 'utf8'), `${ROOT_KEY}\n`);
    assert.is(mode(authorized), 0o600);
    assert.is(mode(join(tmp.path, 'root-ssh')), 0o700);
    assert.not.ok(first.stdout.includes('PRIVATE KEY') || first.stderr.includes('PRIVATE KEY'), 'never prints the key');

    const second = runHostKey(tmp.path, metadata);
    assert.is(second.status, 0, second.stderr);
    assert.match(second.stdout, 'installed already');
    assert.is(readFileSync(authorized, 'utf8'), `${ROOT_KEY}\n`, 'no duplicate key');
  } finally {
    tmp.remove();
  }
});

hostKey('reads the user data exactly as src/edge/user-data.ts writes it', () => {
  if (!toolsReady()) return;
  const tmp = makeTempDir('innisfree-hostkey-');
  try {
    const pair = keyPair(tmp.path, 'generated');
    const data = renderUserData({
      sshPublicKey: ROOT_KEY,
      hostKey: { privateKey: pair.private, publicKey: pair.public },
    });
    const result = runHostKey(tmp.path, { user_data: data });
    assert.is(result.status, 0, result.stderr);
    assert.match(result.stdout, 'installed the SSH host key');
    assert.is(readFileSync(join(tmp.path, 'etc-ssh', 'ssh_host_ed25519_key'), 'utf8').trim(), pair.private.trim());
    assert.is(readFileSync(join(tmp.path, 'root-ssh', 'authorized_keys'), 'utf8'), `${ROOT_KEY}\n`);
  } finally {
    tmp.remove();
  }
});

hostKey('keeps existing keys next to the one it adds (e.g. the account keys DigitalOcean wrote)', () => {
  if (!toolsReady()) return;
  const tmp = makeTempDir('innisfree-hostkey-');
  try {
    const pair = keyPair(tmp.path, 'generated');
    run('mkdir', ['-p', join(tmp.path, 'root-ssh')]);
    writeFileSync(join(tmp.path, 'root-ssh', 'authorized_keys'), 'ssh-ed25519 AAAAaccountkey account\n');
    const result = runHostKey(tmp.path, { user_data: userData(pair) });
    assert.is(result.status, 0, result.stderr);
    assert.is(
      readFileSync(join(tmp.path, 'root-ssh', 'authorized_keys'), 'utf8'),
      `ssh-ed25519 AAAAaccountkey account\n${ROOT_KEY}\n`,
    );
  } finally {
    tmp.remove();
  }
});

hostKey('a pair that does not match is not installed; the current host key stays', () => {
  if (!toolsReady()) return;
  const tmp = makeTempDir('innisfree-hostkey-');
  try {
    const current = keyPair(join(tmp.path), 'current');
    const a = keyPair(tmp.path, 'a');
    const b = keyPair(tmp.path, 'b');
    const etc = join(tmp.path, 'etc-ssh');
    run('mkdir', ['-p', etc]);
    writeFileSync(join(etc, 'ssh_host_ed25519_key'), current.private);
    const result = runHostKey(tmp.path, { user_data: userData({ private: a.private, public: b.public }) });
    assert.is(result.status, 0, result.stderr);
    assert.match(result.stderr, 'does not match; keeping the current host key');
    assert.is(readFileSync(join(etc, 'ssh_host_ed25519_key'), 'utf8'), current.private);
  } finally {
    tmp.remove();
  }
});

hostKey('user data that is not innisfree cloud-config (a Nix expression, nothing) installs nothing', () => {
  if (!toolsReady()) return;
  const tmp = makeTempDir('innisfree-hostkey-');
  try {
    for (const metadata of [{ user_data: '{ pkgs, ... }: { }' }, { user_data: '#cloud-config\nssh_keys: {}' }, {}]) {
      const result = runHostKey(tmp.path, metadata);
      assert.is(result.status, 0, result.stderr);
      assert.match(result.stdout, 'nothing to install');
      assert.not.ok(existsSync(join(tmp.path, 'etc-ssh', 'ssh_host_ed25519_key')));
    }
    const missing = run('bash', [HOST_KEY], {
      env: { PATH: process.env.PATH, INNISFREE_DO_METADATA: join(tmp.path, 'absent.json') },
    });
    assert.is(missing.status, 0);
    assert.match(missing.stdout, 'no DigitalOcean metadata');
  } finally {
    tmp.remove();
  }
});

hostKey.run();

// ---
const addresses = suite('edge platform: public IPv4, IPv6 and anchor IPv4 from metadata (throwaway namespaces)');

addresses('configures both on the interface with the public MAC, idempotently', () => {
  if (process.getuid?.() !== 0) return skipped('public addresses', 'needs root to create a network namespace');
  for (const tool of ['jq', 'ip', 'awk'])
    if (!commandExists(tool)) return skipped('public addresses', `${tool} is not installed`);
  const namespace = `innisfree-pub-${randomBytes(4).toString('hex')}`;
  const tmp = makeTempDir('innisfree-pub-');
  const mac = '02:00:5e:10:00:42';
  try {
    assert.is(run('ip', ['netns', 'add', namespace]).status, 0);
    // A veth pair stands in for the droplet's NIC (this kernel has no dummy links).
    const link = run('ip', [
      '-n',
      namespace,
      'link',
      'add',
      'pub0',
      'address',
      mac,
      'type',
      'veth',
      'peer',
      'name',
      'pub0p',
    ]);
    assert.is(link.status, 0, link.stderr);
    for (const dev of ['pub0', 'pub0p']) assert.is(run('ip', ['-n', namespace, 'link', 'set', dev, 'up']).status, 0);
    const metadata = join(tmp.path, 'v1.json');
    writeFileSync(
      metadata,
      JSON.stringify({
        interfaces: {
          public: [
            {
              mac: mac.toUpperCase(),
              type: 'public',
              ipv4: { ip_address: '203.0.113.10', netmask: '255.255.255.0', gateway: '203.0.113.1' },
              ipv6: { ip_address: '2001:db8:10::5', cidr: 64, gateway: '2001:db8:10::1' },
              anchor_ipv4: { ip_address: '10.17.0.5', netmask: '255.255.0.0', gateway: '10.17.0.1' },
            },
          ],
        },
        reserved_ip: { ipv4: { active: false }, ipv6: { active: true, ip_address: '2001:db8:f00d::7' } },
      }),
    );
    for (let round = 0; round < 2; round++) {
      const result = run('ip', ['netns', 'exec', namespace, 'bash', PUBLIC_ADDRESSES], {
        env: { PATH: process.env.PATH, INNISFREE_DO_METADATA: metadata },
      });
      assert.is(result.status, 0, result.stderr);
      assert.match(result.stdout, 'public IPv4 203.0.113.10/24 via 203.0.113.1 on pub0');
      assert.match(result.stdout, 'public IPv6 2001:db8:10::5/64 via 2001:db8:10::1 on pub0');
      assert.match(result.stdout, 'anchor IPv4 10.17.0.5/16 on pub0');
      assert.match(result.stdout, 'reserved IPv6 2001:db8:f00d::7/128 on lo');
    }
    assert.match(
      run('ip', ['-n', namespace, '-6', 'address', 'show', 'dev', 'lo']).stdout,
      'inet6 2001:db8:f00d::7/128',
      'the reserved IPv6, on lo',
    );
    assert.match(
      run('ip', ['-n', namespace, '-6', 'address', 'show', 'dev', 'pub0']).stdout,
      'inet6 2001:db8:10::5/64',
    );
    assert.match(
      run('ip', ['-n', namespace, '-6', 'route', 'show', 'default']).stdout,
      'default via 2001:db8:10::1 dev pub0',
    );
    const v4 = run('ip', ['-n', namespace, '-4', 'address', 'show', 'dev', 'pub0']).stdout;
    assert.match(v4, 'inet 203.0.113.10/24', 'the public IPv4: a stock-image droplet has no DHCP to give it');
    assert.match(
      run('ip', ['-n', namespace, '-4', 'route', 'show', 'default']).stdout,
      'default via 203.0.113.1 dev pub0',
    );
    assert.match(v4, 'inet 10.17.0.5/16');
    assert.match(
      run('ip', ['-n', namespace, 'route', 'show', 'table', '200']).stdout,
      'default via 10.17.0.1 dev pub0',
    );
    const rules = run('ip', ['-n', namespace, 'rule', 'show'])
      .stdout.split('\n')
      .filter((l) => l.includes('from 10.17.0.5'));
    assert.is(rules.length, 1, 'one rule for the anchor address, however often it runs');
  } finally {
    run('ip', ['netns', 'delete', namespace]);
    tmp.remove();
  }
  assert.not.ok(run('ip', ['netns', 'list']).stdout.includes(namespace), 'the namespace was removed');
});

addresses(
  'a droplet without DHCP: link-local address, metadata fetched as nixpkgs does, public addresses set',
  async () => {
    if (process.getuid?.() !== 0) return skipped('metadata over link-local', 'needs root to create network namespaces');
    for (const tool of ['jq', 'ip', 'awk', 'curl', 'python3'])
      if (!commandExists(tool)) return skipped('metadata over link-local', `${tool} is not installed`);
    const id = randomBytes(4).toString('hex');
    const droplet = `innisfree-dl-${id}`;
    const cloud = `innisfree-md-${id}`;
    const tmp = makeTempDir('innisfree-md-');
    const mac = '02:00:5e:10:00:43';
    let server: ReturnType<typeof spawn> | undefined;
    try {
      for (const ns of [droplet, cloud]) assert.is(run('ip', ['netns', 'add', ns]).status, 0);
      assert.is(
        run('ip', [
          '-n',
          droplet,
          'link',
          'add',
          'eth0',
          'address',
          mac,
          'type',
          'veth',
          'peer',
          'name',
          'md0',
          'netns',
          cloud,
        ]).status,
        0,
      );
      // The cloud side: DigitalOcean's metadata address, serving a document of the real shape. No DHCP anywhere.
      assert.is(run('ip', ['-n', cloud, 'address', 'add', '169.254.169.254/16', 'dev', 'md0']).status, 0);
      assert.is(run('ip', ['-n', cloud, 'link', 'set', 'md0', 'up']).status, 0);
      const root = join(tmp.path, 'www');
      run('mkdir', ['-p', join(root, 'metadata')]);
      writeFileSync(
        join(root, 'metadata', 'v1.json'),
        JSON.stringify({
          droplet_id: 2756294,
          hostname: 'innisfree-web',
          public_keys: [ROOT_KEY],
          region: 'nyc3',
          interfaces: {
            public: [
              {
                ipv4: { ip_address: '198.51.100.20', netmask: '255.255.240.0', gateway: '198.51.100.1' },
                ipv6: { ip_address: '2001:db8:20::7', cidr: 64, gateway: '2001:db8:20::1' },
                anchor_ipv4: { ip_address: '10.20.0.6', netmask: '255.255.0.0', gateway: '10.20.0.1' },
                mac,
                type: 'public',
              },
            ],
          },
          floating_ip: { ipv4: { active: true, ip_address: '198.51.100.99' } },
          reserved_ip: { ipv4: { active: true, ip_address: '198.51.100.99' } },
          dns: { nameservers: ['2001:4860:4860::8844', '8.8.8.8'] },
        }),
      );
      server = spawn(
        'ip',
        [
          'netns',
          'exec',
          cloud,
          'python3',
          '-m',
          'http.server',
          '80',
          '--bind',
          '169.254.169.254',
          '--directory',
          root,
        ],
        { stdio: 'ignore' },
      );
      const env = { env: { PATH: process.env.PATH, INNISFREE_DO_METADATA: join(tmp.path, 'v1.json') } };
      const link = run('ip', ['netns', 'exec', droplet, 'bash', METADATA_LINK], env);
      assert.is(link.status, 0, link.stderr);
      assert.match(link.stdout, /metadata service reachable through eth0 \(169\.254\.\d+\.\d+\/16\)/);
      let fetched = run('false', []);
      for (let i = 0; i < 50 && fetched.status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        fetched = run('ip', [
          'netns',
          'exec',
          droplet,
          'curl',
          '-fsSL',
          '--max-time',
          '2',
          '-o',
          join(tmp.path, 'v1.json'),
          'http://169.254.169.254/metadata/v1.json',
        ]);
      }
      assert.is(fetched.status, 0, `the metadata service answers over link-local: ${fetched.stderr}`);
      const set = run('ip', ['netns', 'exec', droplet, 'bash', PUBLIC_ADDRESSES], env);
      assert.is(set.status, 0, set.stderr);
      assert.match(run('ip', ['-n', droplet, '-4', 'address', 'show', 'dev', 'eth0']).stdout, 'inet 198.51.100.20/20');
      assert.match(
        run('ip', ['-n', droplet, '-4', 'route', 'show', 'default']).stdout,
        'default via 198.51.100.1 dev eth0',
      );
      assert.match(
        run('ip', ['-n', droplet, '-6', 'address', 'show', 'dev', 'eth0']).stdout,
        'inet6 2001:db8:20::7/64',
      );
      // Once more, as after a restart of the units: nothing doubles.
      assert.is(run('ip', ['netns', 'exec', droplet, 'bash', METADATA_LINK], env).status, 0);
      const linkLocal =
        run('ip', ['-n', droplet, '-4', 'address', 'show', 'dev', 'eth0']).stdout.match(/inet 169\.254\./g) ?? [];
      assert.is(linkLocal.length, 1);
    } finally {
      server?.kill('SIGKILL');
      for (const ns of [droplet, cloud]) run('ip', ['netns', 'delete', ns]);
      tmp.remove();
    }
  },
);

addresses('without metadata or a matching interface it does nothing and succeeds', () => {
  const tmp = makeTempDir('innisfree-pub-');
  try {
    const absent = run('bash', [PUBLIC_ADDRESSES], {
      env: { PATH: process.env.PATH, INNISFREE_DO_METADATA: join(tmp.path, 'none.json') },
    });
    assert.is(absent.status, 0);
    if (!commandExists('jq')) return skipped('public addresses', 'jq is not installed');
    writeFileSync(
      join(tmp.path, 'v1.json'),
      JSON.stringify({ interfaces: { public: [{ mac: '02:00:5e:ff:ff:ff' }] } }),
    );
    const unmatched = run('bash', [PUBLIC_ADDRESSES], {
      env: { PATH: process.env.PATH, INNISFREE_DO_METADATA: join(tmp.path, 'v1.json') },
    });
    assert.is(unmatched.status, 0);
    assert.match(unmatched.stderr, 'no interface has the public MAC address');
  } finally {
    tmp.remove();
  }
});

addresses.run();
