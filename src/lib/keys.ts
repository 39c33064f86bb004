// Key material made with node:crypto and ssh2, never by shelling out with a key on a command line.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import ssh2 from 'ssh2';

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
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey: pair.private, publicKey: pair.public.trim() };
}

