// Reading iproute2's JSON (`ip -j addr`, `ip -j route`): one flat list of addresses with their device, one list of
// routes, so each caller keeps only its own filter. Empty output (an old ip, no links) reads as nothing.

/** One address of `ip -j addr show`: its link, family ("inet", "inet6"), address and prefix, as ip prints them. */
export interface IpAddress {
  device?: string;
  family?: string;
  local?: string;
  /** The peer address of a point-to-point link. */
  address?: string;
  prefixlen?: number;
  scope?: string;
}

/** One route of `ip -j route show`. */
export interface IpRoute {
  dst?: string;
  dev?: string;
  type?: string;
}

interface IpLink {
  ifname?: string;
  addr_info?: Array<Omit<IpAddress, 'device'>>;
}

/** Every address of every link in `ip -j addr show` output; throws a SyntaxError on text that is not JSON. */
export function ipAddressesOf(addrJson: string): IpAddress[] {
  return (JSON.parse(addrJson || '[]') as IpLink[]).flatMap((link) =>
    (link.addr_info ?? []).map((info) => ({ ...info, ...(link.ifname ? { device: link.ifname } : {}) })),
  );
}

/** The routes in `ip -j route show` output; throws a SyntaxError on text that is not JSON. */
export function ipRoutesOf(routeJson: string): IpRoute[] {
  return JSON.parse(routeJson || '[]') as IpRoute[];
}
