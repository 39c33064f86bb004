// tunnel.json: a tunnel's identity on this host (its addressing), written once and kept across runs so the edge
// config, the interface name and the tunnel addresses stay the same. Keys live beside it in wireguard/ and ssh/.
import { type Dirent, existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { z } from 'zod';
import type { Allocation } from '../addressing.js';
import { type SshKeyPair, generateSshKeyPair, generateWireguardKeyPair, wireguardPublicKeyOf } from '../lib/keys.js';
import { UsageError } from '../lib/errors.js';
import { parseJsonOrUndefined } from '../lib/json.js';
import { fsFailure } from '../lib/fs-errors.js';
import { TUNNEL_NAME_PATTERN } from '../spec/primitives.js';
import { PUBLIC_MODE, SECRET_MODE, readTextIfExists, writeFileAtomic, writeJsonAtomic } from './files.js';
import { type TunnelPaths, tunnelPaths } from './paths.js';

const AllocationSchema = z.object({
  index: z.number().int().min(0),
  pool: z.string(),
  interface: z.string(),
  edgeInterface: z.string(),
  homeAddress: z.string(),
  edgeAddress: z.string(),
  homeAddress6: z.string().optional(),
  edgeAddress6: z.string().optional(),
});

export const TunnelRecord = z.object({
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  allocation: AllocationSchema,
});

export type TunnelRecord = z.infer<typeof TunnelRecord>;

export async function readTunnelRecord(paths: TunnelPaths): Promise<TunnelRecord | undefined> {
  const text = await readTextIfExists(paths.tunnel);
  if (text === undefined) return undefined;
  const parsed = TunnelRecord.safeParse(parseJsonOrUndefined(text));
  if (!parsed.success) throw damagedStateError(paths, paths.tunnel);
  return parsed.data;
}

/** A state file that is there but unreadable as what it should be (truncated, edited, foreign). */
export function damagedStateError(paths: TunnelPaths, file: string): UsageError {
  return new UsageError(`${file} is damaged`, {
    hint: `remove the tunnel's state with: innisfree down ${paths.dir.split('/').pop()} (or delete ${paths.dir})`,
  });
}

/**
 * Directories (or links) under the root named like a tunnel, sorted: what `list` calls local state and `clean`
 * keeps, even when their files are unreadable or not yet written.
 */
export async function listTunnelDirs(root: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsFailure(error, root, 'list');
  }
  return (
    entries
      // A link to a directory counts: the allocation of a linked-in tunnel must not be handed out twice.
      .filter((entry) => (entry.isDirectory() || entry.isSymbolicLink()) && TUNNEL_NAME_PATTERN.test(entry.name))
      .map((entry) => entry.name)
      .sort()
  );
}

/**
 * Names of the tunnels with state under the root: directories holding a tunnel.json or status.json, readable or not.
 */
export async function listTunnelNames(root: string): Promise<string[]> {
  return (await listTunnelDirs(root)).filter((name) => {
    const paths = tunnelPaths(root, name);
    return existsSync(paths.tunnel) || existsSync(paths.status);
  });
}

export async function writeTunnelRecord(
  paths: TunnelPaths,
  name: string,
  allocation: Allocation,
  now: Date,
): Promise<TunnelRecord> {
  const previous = await readTunnelRecord(paths).catch(() => undefined);
  const record: TunnelRecord = { version: 1, name, createdAt: previous?.createdAt ?? now.toISOString(), allocation };
  await writeJsonAtomic(paths.tunnel, record);
  return record;
}

/** Every tunnel with state under the root (directories holding a readable tunnel.json). */
export async function listTunnelRecords(root: string): Promise<TunnelRecord[]> {
  const records: TunnelRecord[] = [];
  for (const name of await listTunnelDirs(root)) {
    const record = await readTunnelRecord(tunnelPaths(root, name)).catch(() => undefined);
    if (record) records.push(record);
  }
  return records;
}

export interface TunnelKeys {
  wireguardPublicKey: string;
  sshPublicKey: string;
  /** The edge's host key (public line). */
  hostPublicKey: string;
  /** Its private half (OpenSSH text, also in paths.hostKeyPrivate): the edge is created with it, never logged. */
  hostPrivateKey: string;
}

/**
 * Creates the tunnel's WireGuard key, SSH client key and edge host key on first use (0600); returns the public halves
 * and the host key.
 */
export async function ensureTunnelKeys(paths: TunnelPaths, name: string): Promise<TunnelKeys> {
  let wgPrivate = (await readTextIfExists(paths.wireguardPrivate))?.trim();
  if (!wgPrivate) {
    const pair = generateWireguardKeyPair();
    await writeFileAtomic(paths.wireguardPrivate, `${pair.privateKey}\n`, SECRET_MODE);
    await writeFileAtomic(paths.wireguardPublic, `${pair.publicKey}\n`, PUBLIC_MODE);
    wgPrivate = pair.privateKey;
  }
  let wireguardPublicKey: string;
  try {
    wireguardPublicKey = wireguardPublicKeyOf(wgPrivate);
  } catch {
    throw new UsageError(`${paths.wireguardPrivate} is damaged: it does not hold a WireGuard private key`, {
      hint: `restore it, or remove it for a new key (the next innisfree up deploys its public half to the edge)`,
    });
  }
  const sshPublicKey = (await ensureSshKeyPair(paths.sshPrivate, paths.sshPublic, `innisfree-${name}`)).publicKey;
  const host = await ensureSshKeyPair(paths.hostKeyPrivate, paths.hostKeyPublic, `innisfree-${name}-edge`);
  return { wireguardPublicKey, sshPublicKey, hostPublicKey: host.publicKey, hostPrivateKey: host.privateKey };
}

const SSH_PUBLIC_KEY_LINE = /^ssh-ed25519 [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;

async function ensureSshKeyPair(privatePath: string, publicPath: string, comment: string): Promise<SshKeyPair> {
  const existingPublic = (await readTextIfExists(publicPath))?.trim();
  const existingPrivate = await readTextIfExists(privatePath);
  if (existingPublic && existingPrivate) {
    // Checked here, where the file can be named, rather than deep in the edge config or in ssh.
    const damaged = !SSH_PUBLIC_KEY_LINE.test(existingPublic)
      ? publicPath
      : !existingPrivate.includes('-----BEGIN OPENSSH PRIVATE KEY-----')
        ? privatePath
        : undefined;
    if (damaged) {
      throw new UsageError(`${damaged} is damaged: it does not hold an OpenSSH ed25519 key`, {
        hint:
          `restore it from a backup; the edge trusts only this key pair, so without it remove the tunnel ` +
          `(innisfree down) and bring it up anew`,
      });
    }
    return { publicKey: existingPublic, privateKey: existingPrivate };
  }
  const pair = generateSshKeyPair(comment);
  const privateKey = pair.privateKey.endsWith('\n') ? pair.privateKey : `${pair.privateKey}\n`;
  await writeFileAtomic(privatePath, privateKey, SECRET_MODE);
  await writeFileAtomic(publicPath, `${pair.publicKey}\n`, PUBLIC_MODE);
  return { publicKey: pair.publicKey, privateKey };
}
