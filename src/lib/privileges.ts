// Whether this process may create network interfaces and routes (root, or CAP_NET_ADMIN as the NixOS home
// module's service grants it).
import { readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12n;

export function hasNetAdmin(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << CAP_NET_ADMIN)) !== 0n;
  } catch {
    return false;
  }
}
