# innisfree's pure Nix library: EdgeConfig (the JSON `innisfree plan` prints, services.innisfree on the edge)
# rendered into nginx stream text, an nftables table and firewall port lists. builtins only, so
# `nix-instantiate --eval` runs it without nixpkgs; modules/edge.nix and the local provider (through
# nix/render-edge.nix) use exactly this text.
let
  util = import ./util.nix;
  validate = import ./validate.nix { inherit util; };
  nginxStream = import ./nginx.nix { inherit util; };
  nftables = import ./nftables.nix { inherit util; };
  firewall = import ./firewall.nix { inherit util; };
  nginxLimits = import ./nginx-limits.nix;
  nginxMain = import ./nginx-main.nix { inherit nginxLimits; };
  # services.innisfree.nginx.workerConnections' default; the local edge renders with it too.
  defaultWorkerConnections = 16384;
  ports = import ./ports.nix { inherit util; };
in
{
  inherit
    util
    validate
    nginxStream
    nftables
    firewall
    nginxLimits
    nginxMain
    defaultWorkerConnections
    ports
    ;

  # What an edge applies: the text of the selected forwarding mode (the other one is empty) and the firewall.
  # Refuses a config that fails validation, with every message.
  render =
    edge:
    let
      problems = validate edge;
    in
    if problems != [ ] then
      throw "innisfree: the edge config is not valid:\n${builtins.concatStringsSep "\n" problems}"
    else
      {
        nginxStream = if edge.forwarding == "nginx" then nginxStream edge else "";
        nginxMain = if edge.forwarding == "nginx" then builtins.removeAttrs (nginxMain defaultWorkerConnections) [ "limits" ] else {
          eventsConfig = "";
          appendConfig = "";
        };
        nftables =
          if edge.forwarding == "nftables" then
            nftables edge
          else
            {
              family = "inet";
              content = "";
            };
        firewall = firewall edge;
      };
}
