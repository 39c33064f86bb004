// DigitalOcean names SSH keys by the MD5 fingerprint of the key blob, colon-separated hex (as `ssh-keygen -E md5
// -lf` prints it without the "MD5:" prefix). Computing it locally lets innisfree fetch exactly its own key instead
// of listing every key in the account (that listing is limited to 10 calls a minute).
import { createHash } from 'node:crypto';
import { UsageError } from '../../lib/errors.js';

export function md5Fingerprint(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  const bytes = blob && /^[A-Za-z0-9+/]+={0,2}$/.test(blob) ? Buffer.from(blob, 'base64') : undefined;
  if (!bytes || bytes.length < 20) {
    throw new UsageError('the tunnel SSH public key is not an OpenSSH public key line', {
      hint: 'remove the tunnel state (innisfree down NAME) so a fresh key pair is made',
    });
  }
  return (createHash('md5').update(bytes).digest('hex').match(/../g) ?? []).join(':');
}
