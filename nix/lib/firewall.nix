# EdgeConfig -> { tcp; udp; }: every port the edge accepts from the internet, sorted: SSH and the public TCP ports,
# the WireGuard port and the public UDP ports. Nothing else is opened.
{ util }:
edge:
let
  publicPorts = protocol: map (p: p.publicPort) (builtins.filter (p: p.protocol == protocol) edge.ports);
in
{
  tcp = util.sortUnique ([ edge.ssh.port ] ++ publicPorts "tcp");
  udp = util.sortUnique ([ edge.wireguard.listenPort ] ++ publicPorts "udp");
}
