import { createHmac } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  fingerprintOf,
  formatKnownHostsLine,
  knownHostsPattern,
  parsePublicKey,
  pinnedKeysFor,
  withPinnedKey,
} from '../../src/edge/known-hosts.js';
import { generateSshKeyPair } from '../../src/lib/keys.js';

const S = suite('known_hosts');
const a = generateSshKeyPair('a').publicKey;
const b = generateSshKeyPair('b').publicKey;
const blob = (line: string) => line.split(' ')[1]!;

S('host patterns follow OpenSSH: bare for port 22, [host]:port otherwise', () => {
  assert.is(knownHostsPattern('203.0.113.5', 22), '203.0.113.5');
  assert.is(knownHostsPattern('203.0.113.5', 2222), '[203.0.113.5]:2222');
  assert.is(formatKnownHostsLine('203.0.113.5', 2222, a), `[203.0.113.5]:2222 ssh-ed25519 ${blob(a)}`);
});

S('public key lines are validated (type must match the blob)', () => {
  assert.equal(parsePublicKey(a), { type: 'ssh-ed25519', blob: blob(a) });
  assert.is(parsePublicKey(`ssh-rsa ${blob(a)}`), undefined);
  assert.is(parsePublicKey('ssh-ed25519 not!base64'), undefined);
  assert.is(parsePublicKey(''), undefined);
  assert.throws(() => formatKnownHostsLine('h', 22, 'garbage'));
});

S('fingerprints look like ssh-keygen -l', () => {
  assert.match(fingerprintOf(blob(a)), /^SHA256:[A-Za-z0-9+/]{43}$/);
});

S('lookup honours ports, comma lists, wildcards, negation, hashed names and markers', () => {
  const salt = Buffer.from('0123456789abcdef0123');
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.9]:2200').digest('base64')}`;
  const text = [
    '# comment',
    `203.0.113.5 ${a}`,
    `[203.0.113.5]:2222,other ${b}`,
    `198.51.100.* ${a}`,
    `*,!192.0.2.1 ${b}`,
    `${hashed} ${a}`,
    `@revoked 192.0.2.7 ${a}`,
    'broken line',
  ].join('\n');
  assert.equal(
    pinnedKeysFor(text, '203.0.113.5', 22).map((k) => k.blob),
    [blob(a), blob(b)],
  );
  assert.equal(
    pinnedKeysFor(text, '203.0.113.5', 2222).map((k) => k.blob),
    [blob(b), blob(b)],
  );
  assert.equal(
    pinnedKeysFor(text, '198.51.100.3', 22).map((k) => k.blob),
    [blob(a), blob(b)],
  );
  assert.equal(pinnedKeysFor(text, '192.0.2.1', 22), []);
  assert.equal(
    pinnedKeysFor(text, '10.0.0.9', 2200).map((k) => k.blob),
    [blob(b), blob(a)],
  );
  assert.equal(
    pinnedKeysFor(text, '192.0.2.7', 22).map((k) => k.blob),
    [blob(b)],
    '@revoked lines are not pins',
  );
});

S('pinning replaces the plain entry for that host:port and keeps everything else', () => {
  const before = `# mine\n203.0.113.5 ${a}\n[203.0.113.5]:2222 ${a}\n`;
  const after = withPinnedKey(before, '203.0.113.5', 2222, b);
  assert.is(after, `# mine\n203.0.113.5 ${a}\n[203.0.113.5]:2222 ssh-ed25519 ${blob(b)}\n`);
  assert.is(withPinnedKey('', '192.0.2.1', 22, a), `192.0.2.1 ssh-ed25519 ${blob(a)}\n`);
});

S.run();
