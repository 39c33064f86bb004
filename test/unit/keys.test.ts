import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateSshKeyPair,
  generateWireguardKeyPair,
  sshKeyPairFromSeed,
  wireguardPublicKeyOf,
} from '../../src/lib/keys.js';
import { makeTempDir } from '../helpers/tmp.js';

function has(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const K = suite('keys');

K('WireGuard keys are 32 bytes of base64, clamped', () => {
  const pair = generateWireguardKeyPair();
  const raw = Buffer.from(pair.privateKey, 'base64');
  assert.is(raw.length, 32);
  assert.is(raw[0]! & 7, 0);
  assert.is(raw[31]! & 128, 0);
  assert.is(raw[31]! & 64, 64);
  assert.is(Buffer.from(pair.publicKey, 'base64').length, 32);
  assert.is(wireguardPublicKeyOf(pair.privateKey), pair.publicKey);
});

K('a known RFC 7748 vector', () => {
  // Alice's key pair from RFC 7748 section 6.1.
  const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString(
    'base64',
  );
  const pub = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
  assert.is(wireguardPublicKeyOf(priv), pub);
});

K('wg pubkey derives the same public key', () => {
  if (!has('wg')) {
    console.log('  SKIPPED: wg (wireguard-tools) is not installed; cannot cross-check with wg pubkey');
    return;
  }
  for (let i = 0; i < 5; i++) {
    const pair = generateWireguardKeyPair();
    const derived = execFileSync('wg', ['pubkey'], { input: `${pair.privateKey}\n` })
      .toString()
      .trim();
    assert.is(derived, pair.publicKey);
  }
});

K('ssh-keygen accepts the SSH key pair and derives the same public key', () => {
  if (!has('ssh-keygen')) {
    console.log('  SKIPPED: ssh-keygen (openssh-client) is not installed');
    return;
  }
  const dir = makeTempDir();
  try {
    const pair = generateSshKeyPair('innisfree-test');
    const path = join(dir.path, 'id_ed25519');
    writeFileSync(path, pair.privateKey, { mode: 0o600 });
    const derived = execFileSync('ssh-keygen', ['-y', '-f', path]).toString().trim();
    assert.is(derived.split(' ').slice(0, 2).join(' '), pair.publicKey.split(' ').slice(0, 2).join(' '));
    assert.match(pair.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  } finally {
    dir.remove();
  }
});

/** The raw ed25519 public key inside an authorized_keys line. */
function rawPublicKey(line: string): Buffer {
  const blob = Buffer.from(line.split(' ')[1]!, 'base64');
  const typeLength = blob.readUInt32BE(0);
  const keyLength = blob.readUInt32BE(4 + typeLength);
  return blob.subarray(8 + typeLength, 8 + typeLength + keyLength);
}

K('ed25519: the RFC 8032 test vector 1 seed gives its public key', () => {
  const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
  const pair = sshKeyPairFromSeed(seed, 'vector', 0x01020304);
  assert.is(
    rawPublicKey(pair.publicKey).toString('hex'),
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  );
  assert.match(pair.publicKey, / vector$/);
});

K('ssh-keygen accepts a key whose public key starts with a zero byte (ssh2 dropped that byte)', () => {
  // One seed in 256 gives such a key; find one deterministically.
  let seed: Buffer;
  for (let i = 0; ; i++) {
    seed = createHash('sha256').update(`seed ${i}`).digest();
    if (rawPublicKey(sshKeyPairFromSeed(seed, 'x', 1).publicKey)[0] === 0) break;
  }
  const pair = sshKeyPairFromSeed(seed, 'innisfree-zero', 7);
  assert.is(rawPublicKey(pair.publicKey).length, 32);
  if (!has('ssh-keygen')) {
    console.log('  SKIPPED: ssh-keygen (openssh-client) is not installed; cannot cross-check the zero-byte key');
    return;
  }
  const dir = makeTempDir();
  try {
    const path = join(dir.path, 'id_ed25519');
    writeFileSync(path, pair.privateKey, { mode: 0o600 });
    assert.is(execFileSync('ssh-keygen', ['-y', '-f', path]).toString().trim(), pair.publicKey);
  } finally {
    dir.remove();
  }
});

K.run();
