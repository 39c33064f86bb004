// Whether the home side's destination can be reached by name: a host name that does not resolve is reported as
// such, not as "nothing answers yet" (which reads as "start your service").
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export type Lookup = (host: string) => Promise<unknown>;

/**
 * A warning when `destination` is a host name that does not resolve here; undefined when it resolves (or is an
 * address).
 */
export async function unresolvedDestination(
  destination: string,
  lookup: Lookup = dnsLookup,
): Promise<string | undefined> {
  if (destination === 'none' || isIP(destination) !== 0) return undefined;
  try {
    await lookup(destination);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'lookup failed';
    return (
      `the destination "${destination}" does not resolve here (${code}); connections through the tunnel fail ` +
      `until it does (check the name, or give its address with --destination)`
    );
  }
}
