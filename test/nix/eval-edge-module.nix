# Evaluates modules/edge.nix with nixpkgs' lib and the stub declarations in nixos-stubs.nix, and returns what it
# configured as plain data for the tests:
#   nix-instantiate --eval --strict --json test/nix/eval-edge-module.nix \
#     --arg nixpkgsLib /path/to/nixpkgs/lib --argstr edgeJson /abs/edge.json [--argstr extraJson '{...}']
# extraJson is merged over the file's content (to build invalid configs and set configHash).
{
  nixpkgsLib,
  edgeJson,
  extraJson ? "{}",
}:
let
  lib = import nixpkgsLib;
  stubs = import ./nixos-stubs.nix { inherit lib; };
  value = lib.recursiveUpdate (lib.importJSON edgeJson) (builtins.fromJSON extraJson);
  evaluated = lib.evalModules {
    modules = [
      stubs.module
      ../../modules/edge.nix
      { services.innisfree = value; }
    ];
    specialArgs = { inherit (stubs) pkgs; };
  };
  c = evaluated.config;
  statusPackage = lib.findFirst (p: p.name == "innisfree-edge-status") null c.environment.systemPackages;
  repairPackage = lib.findFirst (p: p.name == "innisfree-edge-repair") null c.environment.systemPackages;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  wireguard = {
    inherit (c.networking.wireguard) enable useNetworkd interfaces;
  };
  firewall = {
    inherit (c.networking.firewall) enable allowedTCPPorts allowedUDPPorts;
  };
  nftables = {
    inherit (c.networking.nftables) enable tables;
  };
  sysctl = c.boot.kernel.sysctl;
  openssh = {
    inherit (c.services.openssh) enable ports openFirewall;
    inherit (c.services.openssh.settings)
      PasswordAuthentication
      KbdInteractiveAuthentication
      PermitRootLogin
      X11Forwarding
      ;
  };
  rootKeys = c.users.users.root.openssh.authorizedKeys.keys;
  gc = {
    inherit (c.nix.gc) automatic dates options;
  };
  nginx = {
    inherit (c.services.nginx)
      enable
      enableReload
      streamConfig
      eventsConfig
      appendConfig
      ;
    limitNofile = c.systemd.services.nginx.serviceConfig.LimitNOFILE or null;
    # What the edge module defines for nginx.service: switch-to-configuration restarts a unit that changed.
    unit = c.systemd.services.nginx or null;
    # The HTTP server blocks NixOS would render, as nixos/modules/services/web-servers/nginx/default.nix does:
    # the http { } block (with every virtual host) only when `config` and `httpConfig` are empty; a virtual host
    # without `listen` listens on defaultHTTPListenPort on each of defaultListenAddresses.
    httpListeners =
      let
        n = c.services.nginx;
        ofHost =
          name: host:
          if host.listen != [ ] then
            map (l: {
              inherit name;
              inherit (l) addr;
              port = if l.port == null then n.defaultHTTPListenPort else l.port;
            }) host.listen
          else
            map (addr: {
              inherit name addr;
              port = n.defaultHTTPListenPort;
            }) n.defaultListenAddresses;
      in
      if n.enable && n.config == "" && n.httpConfig == "" then
        lib.concatLists (lib.mapAttrsToList ofHost n.virtualHosts)
      else
        [ ];
  };
  configHashFile = c.environment.etc."innisfree/config-hash".text or null;
  status = if statusPackage == null then null else { inherit (statusPackage) text; };
  repair = if repairPackage == null then null else { inherit (repairPackage) text; };
  # Every option path under services.innisfree, for the test that compares them with the JSON Schema.
  optionPaths = map (o: lib.concatStringsSep "." (lib.drop 2 o.loc)) (
    lib.filter (o: !(o.internal or false)) (lib.optionAttrSetToDocList evaluated.options.services.innisfree)
  );
}
