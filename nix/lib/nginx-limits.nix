# nginx sizing for an EdgeConfig: every listening socket counts against worker_connections (nginx refuses to start
# otherwise), on top of the budget for proxied connections, each of which takes two. The descriptor limit leaves
# room for both plus logs and upstream sockets.
edge: connections:
let
  listeners = (if edge.ipv6 then 2 else 1) * builtins.length edge.ports;
  workerConnections = connections + listeners;
in
{
  inherit listeners workerConnections;
  nofile = 2 * workerConnections + 1024;
}
