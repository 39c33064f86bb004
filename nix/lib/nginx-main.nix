# The parts of nginx.conf outside `stream { }` that innisfree sets, as modules/edge.nix hands them to NixOS'
# services.nginx (eventsConfig, appendConfig) and as the local edge writes them into its own nginx.conf, so both
# run nginx with the same limits. `connections` is services.innisfree.nginx.workerConnections.
{ nginxLimits }:
connections:
let
  limits = nginxLimits connections;
in
{
  inherit limits;
  eventsConfig = "worker_connections ${toString limits.workerConnections};";
  appendConfig = ''
    worker_processes auto;
    worker_rlimit_nofile ${toString limits.nofile};
  '';
}
