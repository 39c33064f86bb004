// The "ready" event `up` prints once the tunnel serves: one line per port mapping, as the spec holds it (the ranges
// the user wrote, each with its own destination), and a command to try it.
import { endpointOf } from '../edge/ssh.js';
import type { ReadyEvent } from '../lib/events.js';
import type { Provider } from '../providers/provider.js';
import { isIP } from 'node:net';
import type { TunnelSpec } from '../spec/tunnel.js';
import type { EdgeInfo } from '../state/edge-info.js';

export async function readyEvent(
  provider: Provider,
  spec: TunnelSpec,
  edge: EdgeInfo,
  /** Whether the served edge config accepts connections on the edge's IPv6 address. */
  servesIpv6: boolean,
): Promise<ReadyEvent> {
  const destination = spec.destination === 'none' ? 'the tunnel address' : spec.destination;
  const ports = spec.ports.map(
    (r) =>
      `${edge.ipv4}:${span(r.publicStart, r.publicEnd)}/${r.protocol} -> ` +
      `${hostText(r.destination ?? destination)}:${span(r.localStart, r.localEnd)}` +
      `${r.proxyProtocol ? ` (PROXY protocol${spec.proxyProtocolVersion === 2 ? ' v2' : ''})` : ''}`,
  );
  const firstTcp = spec.ports.find((p) => p.protocol === 'tcp');
  let tryIt: string | undefined;
  let tryItNote: string | undefined;
  let tryIt6: string | undefined;
  if (firstTcp) {
    const url = (address: string) => `http://${endpointOf(address, firstTcp.publicStart)}/`;
    const ipv6 = edge.ipv6 && servesIpv6 ? edge.ipv6 : undefined;
    const { clientCommand } = provider;
    if (clientCommand) {
      // A provider with an internet client of its own (the local one): the command runs as that client.
      const asClient = async (address: string) => {
        const argv = await clientCommand.call(provider, spec.name, ['curl', '-sS', '--max-time', '5', url(address)]);
        return `sudo ${argv.join(' ')}`;
      };
      tryIt = await asClient(edge.ipv4);
      tryItNote = await provider.clientNote?.(spec.name);
      if (ipv6) tryIt6 = await asClient(ipv6);
    } else {
      tryIt = `curl -v ${url(edge.ipv4)}   (if the service speaks HTTP)`;
      if (ipv6) tryIt6 = `curl -v ${url(ipv6)}`;
    }
  }
  return {
    type: 'ready',
    tunnel: spec.name,
    ipv4: edge.ipv4,
    ...(edge.ipv6 ? { ipv6: edge.ipv6 } : {}),
    ports,
    ...(tryIt ? { tryIt } : {}),
    ...(tryIt6 ? { tryIt6 } : {}),
    ...(tryItNote ? { tryItNote } : {}),
  };
}

function hostText(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function span(from: number, to: number): string {
  return from === to ? `${from}` : `${from}-${to}`;
}
