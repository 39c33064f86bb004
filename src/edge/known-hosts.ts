// The tunnel's pinned known_hosts file, in OpenSSH's format so the system `ssh`, deploy-rs and ssh2 all read the same
// pin. Host patterns follow OpenSSH: the bare address for port 22, "[address]:port" otherwise. Pure parsing and
// formatting here; the two file helpers at the end are the only effects.
import { createHash, createHmac } from 'node:crypto';
import { PUBLIC_MODE, readTextIfExists, writeFileAtomic } from '../state/files.js';

export interface HostPublicKey {
  /** The key type as written in the file, e.g. "ssh-ed25519". */
  type: string;
  /** The key blob (SSH wire format) in base64: what ssh2 hands a host verifier, base64-encoded. */
  blob: string;
}

/** How OpenSSH names a host in known_hosts: "host" for port 22, "[host]:port" for any other port. */
export function knownHostsPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/**
 * Parses one public key line ("ssh-ed25519 AAAA… comment", or a known_hosts key part). Returns undefined unless the
 * blob is valid base64 whose embedded type name matches the declared type.
 */
export function parsePublicKey(line: string): HostPublicKey | undefined {
  const [type, blob] = line.trim().split(/\s+/);
  if (!type || !blob || !/^[A-Za-z0-9+/]+={0,3}$/.test(blob)) return undefined;
  const raw = Buffer.from(blob, 'base64');
  if (raw.length < 4) return undefined;
  const nameLength = raw.readUInt32BE(0);
  if (nameLength > raw.length - 4 || raw.subarray(4, 4 + nameLength).toString('latin1') !== type) return undefined;
  return { type, blob: raw.toString('base64') };
}

/** "SHA256:…" as `ssh-keygen -l` prints it. */
export function fingerprintOf(blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** The known_hosts line pinning `publicKeyLine` for host:port (the key's comment is dropped). */
export function formatKnownHostsLine(host: string, port: number, publicKeyLine: string): string {
  const key = parsePublicKey(publicKeyLine);
  if (!key) throw new Error('not an OpenSSH public key line');
  return `${knownHostsPattern(host, port)} ${key.type} ${key.blob}`;
}

/** Every key known_hosts text pins for host:port (plain, comma-listed, wildcard and hashed host fields). */
export function pinnedKeysFor(text: string, host: string, port: number): HostPublicKey[] {
  const name = knownHostsPattern(host, port);
  const keys: HostPublicKey[] = [];
  for (const line of text.split('\n')) {
    const entry = parseKnownHostsLine(line);
    if (entry && entry.marker === undefined && hostFieldMatches(entry.hosts, name)) keys.push(entry.key);
  }
  return keys;
}

interface KnownHostsEntry {
  marker: string | undefined;
  hosts: string;
  key: HostPublicKey;
}

function parseKnownHostsLine(line: string): KnownHostsEntry | undefined {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return undefined;
  const fields = trimmed.split(/\s+/);
  const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
  const hosts = fields.shift();
  const key = parsePublicKey(fields.join(' '));
  return hosts && key ? { marker, hosts, key } : undefined;
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) return hashedHostMatches(field, name);
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatches(pattern.slice(1), name)) return false;
    } else if (globMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** OpenSSH's HashKnownHosts form: |1|base64(salt)|base64(HMAC-SHA1(salt, name)). */
function hashedHostMatches(field: string, name: string): boolean {
  const [, , salt, hash] = field.split('|');
  if (!salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

function globMatches(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern.toLowerCase() === name.toLowerCase();
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`, 'i').test(name);
}

/**
 * known_hosts text with host:port pinned to exactly `publicKeyLine`: earlier plain entries for that host are
 * replaced, every other line is kept as it was.
 */
export function withPinnedKey(text: string, host: string, port: number, publicKeyLine: string): string {
  const name = knownHostsPattern(host, port);
  const kept = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => {
      const entry = parseKnownHostsLine(line);
      return !(entry && entry.marker === undefined && entry.hosts.split(',').includes(name));
    });
  return `${[...kept, formatKnownHostsLine(host, port, publicKeyLine)].join('\n')}\n`;
}

/** Reads the keys pinned for host:port; an absent file pins nothing. */
export async function readPinnedKeys(path: string, host: string, port: number): Promise<HostPublicKey[]> {
  return pinnedKeysFor((await readTextIfExists(path)) ?? '', host, port);
}

/**
 * Pins the edge's host key before first contact. The CLI makes the edge's host key itself and injects it at
 * create, so there is no trust on first use: this writes the entry from that public key.
 */
export async function pinHostKey(path: string, host: string, port: number, publicKeyLine: string): Promise<void> {
  const current = (await readTextIfExists(path)) ?? '';
  await writeFileAtomic(path, withPinnedKey(current, host, port, publicKeyLine), PUBLIC_MODE);
}
