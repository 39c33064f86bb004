// Key material made with node:crypto, never by shelling out with a key on a command line. The OpenSSH encoding is
// our own: ssh2's generator drops a leading zero byte of the ed25519 public key (one key in 256), and OpenSSH then
// refuses the whole file ("error in libcrypto") — a local edge's sshd failed to start on such a host key.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';

export interface WireguardKeyPair {
  privateKey: string;
  publicKey: string;
}

export interface SshKeyPair {
  /** OpenSSH private key file content ("-----BEGIN OPENSSH PRIVATE KEY-----"). */
  privateKey: string;
  /** One authorized_keys line: "ssh-ed25519 AAAA… comment". */
  publicKey: string;
}

// PKCS#8 and SPKI DER prefixes for raw X25519 keys (RFC 8410).
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A WireGuard key pair in WireGuard's base64 format; the private key is clamped as `wg genkey` does. */
export function generateWireguardKeyPair(): WireguardKeyPair {
  const raw = randomBytes(32);
  raw[0]! &= 248;
  raw[31]! &= 127;
  raw[31]! |= 64;
  const privateKey = raw.toString('base64');
  return { privateKey, publicKey: wireguardPublicKeyOf(privateKey) };
}

export function wireguardPublicKeyOf(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64.trim(), 'base64');
  if (raw.length !== 32) throw new Error('a WireGuard private key is 32 bytes of base64');
  const key = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url').toString('base64');
}

/** An ed25519 key pair in OpenSSH format, unencrypted (stored 0600 in the tunnel's state). */
export function generateSshKeyPair(comment: string): SshKeyPair {
  return sshKeyPairFromSeed(randomBytes(32), comment, randomBytes(4).readUInt32BE(0));
}

/**
 * The OpenSSH key pair of an ed25519 seed (PROTOCOL.key in OpenSSH's sources): an unencrypted "openssh-key-v1"
 * file and its authorized_keys line. `checkInt` is the file's random check value, a parameter so tests are exact.
 */
export function sshKeyPairFromSeed(seed: Buffer, comment: string, checkInt: number): SshKeyPair {
  if (seed.length !== 32) throw new Error('an ed25519 seed is 32 bytes');
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url');
  const keyType = Buffer.from('ssh-ed25519');
  const publicBlob = Buffer.concat([sshString(keyType), sshString(publicKey)]);
  const check = uint32(checkInt >>> 0);
  const unpadded = Buffer.concat([
    check,
    check,
    sshString(keyType),
    sshString(publicKey),
    sshString(Buffer.concat([seed, publicKey])),
    sshString(Buffer.from(comment)),
  ]);
  // Padded to the cipher block size ("none": 8) with the bytes 1, 2, 3, …
  const padding = Buffer.from(Array.from({ length: (8 - (unpadded.length % 8)) % 8 }, (_, i) => i + 1));
  const file = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString(Buffer.from('none')),
    sshString(Buffer.from('none')),
    sshString(Buffer.alloc(0)),
    uint32(1),
    sshString(publicBlob),
    sshString(Buffer.concat([unpadded, padding])),
  ]);
  const body = file.toString('base64').replace(/.{1,70}/g, '$&\n');
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${publicBlob.toString('base64')}${comment ? ` ${comment}` : ''}`,
  };
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

/** An SSH wire-format string: uint32 length, then the bytes. */
function sshString(bytes: Buffer): Buffer {
  return Buffer.concat([uint32(bytes.length), bytes]);
}
