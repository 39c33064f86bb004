// Reserved IPs that `down` kept (DigitalOcean bills an unassigned one), by tunnel, in the state root: the tunnel's
// own directory is removed by `down`, and `down NAME --release-ip` must still find the IP afterwards.
import { keptReservedIpsFile } from './paths.js';
import { readTextIfExists, writeJsonAtomic } from './files.js';
import { rm } from 'node:fs/promises';

type Kept = Record<string, string>;

async function readKept(root: string): Promise<Kept> {
  const text = await readTextIfExists(keptReservedIpsFile(root));
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch {
    return {};
  }
}

export async function keptReservedIpOf(root: string, tunnel: string): Promise<string | undefined> {
  return (await readKept(root))[tunnel];
}

/** Records (ip) or forgets (undefined) the reserved IP kept for `tunnel`. */
export async function setKeptReservedIp(root: string, tunnel: string, ip: string | undefined): Promise<void> {
  const kept = await readKept(root);
  if (ip === undefined) delete kept[tunnel];
  else kept[tunnel] = ip;
  if (Object.keys(kept).length === 0) await rm(keptReservedIpsFile(root), { force: true });
  else await writeJsonAtomic(keptReservedIpsFile(root), kept);
}
