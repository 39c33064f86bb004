// Reserved IPs that `down` kept (DigitalOcean bills an unassigned one), by tunnel, in the state root: the tunnel's
// own directory is removed by `down`, and `down NAME --release-ip` must still find the IP afterwards. Reserved
// IPv4 in kept-reserved-ips.json, reserved IPv6 in kept-reserved-ipv6.json (same shape: tunnel → address).
import { keptReservedIpsFile } from './paths.js';
import { readTextIfExists, writeJsonAtomic } from './files.js';
import { rm } from 'node:fs/promises';

type Kept = Record<string, string>;

async function readKept(root: string, family: 4 | 6): Promise<Kept> {
  const text = await readTextIfExists(keptReservedIpsFile(root, family));
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(
      Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  } catch {
    return {};
  }
}

export async function keptReservedIpOf(root: string, tunnel: string, family: 4 | 6 = 4): Promise<string | undefined> {
  return (await readKept(root, family))[tunnel];
}

/** Records (ip) or forgets (undefined) the reserved IP kept for `tunnel`. */
export async function setKeptReservedIp(
  root: string,
  tunnel: string,
  ip: string | undefined,
  family: 4 | 6 = 4,
): Promise<void> {
  const kept = await readKept(root, family);
  if (ip === undefined) delete kept[tunnel];
  else kept[tunnel] = ip;
  if (Object.keys(kept).length === 0) await rm(keptReservedIpsFile(root, family), { force: true });
  else await writeJsonAtomic(keptReservedIpsFile(root, family), kept);
}
