# The renderer's entry point for consumers outside NixOS (the local provider, tests):
#   nix-instantiate --eval --strict --json nix/render-edge.nix --argstr edgeJson /abs/path/edge.json
# prints { nginxStream; nginxMain = { eventsConfig; appendConfig; }; nftables = { family; content; };
# firewall = { tcp; udp; }; } for the config's forwarding mode (the other mode's text is empty). nginxStream is the
# inside of `stream { }`, nginxMain what the NixOS edge puts in events { } and the main context, nftables.content the inside of
# `table inet innisfree { }`. An invalid config fails with every problem listed.
{ edgeJson }:
(import ./lib).render (builtins.fromJSON (builtins.readFile edgeJson))
