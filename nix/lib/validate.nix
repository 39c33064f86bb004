# Checks an EdgeConfig for what option types cannot express. Returns a list of messages, each saying what is wrong,
# why it cannot work and how to fix it; an empty list means the config is sound. modules/edge.nix turns them into
# NixOS assertions, render-edge.nix refuses to render while there are any.
# The port rules here mirror the one TypeScript check, validatePortSet in src/spec/ports.ts (with spec/sources.ts).
{ util }:
edge:
let
  inherit (util) numbered collisions;
  entries = numbered edge.ports;
  label = port: "${toString port.publicPort}/${port.protocol}";
  positions = group: builtins.concatStringsSep ", " (map (p: toString p.position) group);
  wg = edge.wireguard;

  empty = util.optional (edge.ports == [ ]) ''
    services.innisfree.ports is empty: an edge without public ports forwards nothing.
    Add at least one entry, e.g. { protocol = "tcp"; publicPort = 443; localPort = 443; proxyProtocol = false; }.'';

  duplicated = map (group: ''
    services.innisfree.ports: public port ${label (builtins.head group)} is listed ${toString (builtins.length group)} times (entries ${positions group}).
    One public port can forward to one place only; keep one of these entries.'') (collisions label entries);

  sshClash = map (port: ''
    services.innisfree.ports: public port ${label port} (entry ${toString port.position}) is the edge's SSH port (services.innisfree.ssh.port = ${toString edge.ssh.port}).
    SSH and the forward cannot both listen there; use another public port, or move SSH (innisfree --edge-ssh-port).'') (
    builtins.filter (p: p.protocol == "tcp" && p.publicPort == edge.ssh.port) entries
  );

  wireguardClash = map (port: ''
    services.innisfree.ports: public port ${label port} (entry ${toString port.position}) is the edge's WireGuard port (services.innisfree.wireguard.listenPort = ${toString wg.listenPort}).
    The tunnel and the forward cannot both listen there; use another public port, or move WireGuard (innisfree --wireguard-port).'') (
    builtins.filter (p: p.protocol == "udp" && p.publicPort == wg.listenPort) entries
  );

  proxyOnUdp = map (port: ''
    services.innisfree.ports: entry ${toString port.position} (${label port}) asks for PROXY protocol, which exists for TCP only.
    Set proxyProtocol = false for it.'') (builtins.filter (p: p.proxyProtocol && p.protocol == "udp") entries);

  proxyWithDnat = map (port: ''
    services.innisfree.ports: entry ${toString port.position} (${label port}) asks for PROXY protocol, but forwarding = "nftables" (kernel DNAT) cannot add the header.
    Use forwarding = "nginx", or set proxyProtocol = false (with DNAT the home side sees the client address anyway).'') (
    builtins.filter (p: p.proxyProtocol && p.protocol == "tcp" && edge.forwarding == "nftables") entries
  );

  ipv6Dnat = util.optional (
    edge.ipv6 && edge.forwarding == "nftables" && ((wg.address6 or null) == null || (wg.peer.address6 or null) == null)
  ) ''
    services.innisfree.ipv6 = true with forwarding = "nftables" needs IPv6 tunnel addresses: kernel DNAT of IPv6 rewrites to the home's tunnel IPv6 address.
    Set services.innisfree.wireguard.address6 and wireguard.peer.address6 (innisfree plan --ipv6 does), or use forwarding = "nginx".'';
in
empty ++ duplicated ++ sshClash ++ wireguardClash ++ proxyOnUdp ++ proxyWithDnat ++ ipv6Dnat
