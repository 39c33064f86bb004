# nginx sizing for an edge, the same for every port set: every listening socket counts against worker_connections
# (nginx refuses to start otherwise), so room is kept for the most listeners the CLI accepts (4,096 public ports,
# MAX_PUBLIC_PORTS in src/spec/ports.ts, each on IPv4 and IPv6) on top of the budget for proxied connections, each
# of which takes two. The figures do not depend on the ports on purpose: nginx.service's LimitNOFILE is derived
# from them, and a unit that changed would make switch-to-configuration restart nginx (dropping every proxied
# connection) instead of reloading it.
connections:
let
  maxPublicPorts = 4096;
  listeners = 2 * maxPublicPorts;
  workerConnections = connections + listeners;
in
{
  inherit maxPublicPorts listeners workerConnections;
  nofile = 2 * workerConnections + 1024;
}
