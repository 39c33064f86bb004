# EdgeConfig -> { family; content; }: the inside of `table inet innisfree { }` for kernel forwarding. Public ports
# addressed to the edge itself are DNATed to the home host's tunnel address WITHOUT masquerade, so the home
# service sees the real client address (the home side routes its replies back through the tunnel). Forwarding is
# allowed for exactly those flows and their replies. One map lookup per protocol and family, however many ports.
# Valid for nft >= 1.0 (NixOS and Debian 12 alike).
{ util }:
edge:
let
  inherit (util) concatMapSep optional;
  wg = edge.wireguard;
  tunnel = ''"${wg.interface}"'';
  home4 = wg.peer.address;
  home6 = wg.peer.address6 or null;
  withIpv6 = edge.ipv6 && home6 != null;

  portsOf = protocol: builtins.filter (p: p.protocol == protocol) edge.ports;

  # One rule per protocol and family: the set filters the ports, the map gives each its home address and port.
  dnatRule =
    family: address: protocol:
    let
      ports = portsOf protocol;
      nfproto = if family == "ip" then "ipv4" else "ipv6";
      keys = concatMapSep ", " (p: toString p.publicPort) ports;
      map' = concatMapSep ", " (p: "${toString p.publicPort} : ${address} . ${toString p.localPort}") ports;
    in
    optional (ports != [ ])
      "fib daddr type local meta nfproto ${nfproto} ${protocol} dport { ${keys} } dnat ${family} to ${protocol} dport map { ${map'} }";

  dnatRules =
    dnatRule "ip" home4 "tcp"
    ++ dnatRule "ip" home4 "udp"
    ++ (if withIpv6 then dnatRule "ip6" home6 "tcp" ++ dnatRule "ip6" home6 "udp" else [ ]);

  lines = indent: list: concatMapSep "" (line: "${indent}${line}\n") list;
in
{
  family = "inet";
  content = ''
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname ${tunnel} return
    ${lines "    " dnatRules}}

    chain output {
        # The edge probing its own public address reaches the home service too, as with nginx.
        type nat hook output priority -100; policy accept;
        ip daddr 127.0.0.0/8 return
        ip6 daddr ::1 return
    ${lines "    " dnatRules}}

    chain forward {
        type filter hook forward priority filter; policy drop;
        # The tunnel's MTU is smaller than the public one: keep TCP segments within it.
        oifname ${tunnel} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
        iifname ${tunnel} tcp flags & (syn | rst) == syn tcp option maxseg size set rt mtu
        ct state invalid drop
        ct state established,related accept
        oifname ${tunnel} ct status dnat accept
    }
  '';
}
