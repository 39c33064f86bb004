# EdgeConfig -> the inside of nginx's `stream { }` block: one server per public port, forwarding to the home host's
# tunnel address. TCP and UDP (replies flow back: proxy_responses is left unset), optional PROXY protocol v1,
# IPv6 listeners when the edge serves IPv6. Valid for nginx >= 1.21.4 (proxy_half_close; NixOS and Debian 12 alike).
{ util }:
edge:
let
  home = edge.wireguard.peer.address;

  # TCP: give up on an unreachable home quickly, but let idle connections (SSH, long polls) live an hour;
  # keepalive on the tunnel side notices a vanished peer. proxy_half_close: a client that sends and then shuts its
  # write side still gets the reply (the home forwarder and nftables DNAT behave the same).
  tcpServer = port: ''
    server {
        listen ${toString port.publicPort};
    ${util.optionalString edge.ipv6 "    listen [::]:${toString port.publicPort} ipv6only=on;\n"}    proxy_pass ${home}:${toString port.localPort};
        proxy_connect_timeout 10s;
        proxy_timeout 1h;
        proxy_socket_keepalive on;
        proxy_half_close on;
    ${util.optionalString port.proxyProtocol "    proxy_protocol on;\n"}}
  '';

  # UDP: reuseport keeps each client's datagrams on one worker (one session); a session ends after two quiet
  # minutes. Replies from the home side are relayed back for the whole session.
  udpServer = port: ''
    server {
        listen ${toString port.publicPort} udp reuseport;
    ${util.optionalString edge.ipv6 "    listen [::]:${toString port.publicPort} udp reuseport ipv6only=on;\n"}    proxy_pass ${home}:${toString port.localPort};
        proxy_timeout 2m;
    }
  '';
in
util.concatMapSep "" (port: if port.protocol == "tcp" then tcpServer port else udpServer port) edge.ports
