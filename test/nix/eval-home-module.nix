# Evaluates modules/home.nix with nixpkgs' lib and the stub declarations in nixos-stubs.nix:
#   nix-instantiate --eval --strict --json test/nix/eval-home-module.nix \
#     --arg nixpkgsLib /path/to/nixpkgs/lib --argstr tunnelsJson '{"web":{...}}'
# and returns the services, launch scripts, tunnel files (and the scripts that check them), credentials and firewall.
{
  nixpkgsLib,
  tunnelsJson,
}:
let
  lib = import nixpkgsLib;
  stubs = import ./nixos-stubs.nix { inherit lib; };
  evaluated = lib.evalModules {
    modules = [
      stubs.module
      ../../modules/home.nix
      {
        services.innisfree.package = {
          type = "derivation";
          name = "innisfree-0.1.0";
          outPath = "/nix/store/00000000000000000000000000000000-innisfree-0.1.0";
          meta.mainProgram = "innisfree";
        };
        services.innisfree.tunnels = builtins.fromJSON tunnelsJson;
      }
    ];
    specialArgs = { inherit (stubs) pkgs; };
  };
  c = evaluated.config;
  innisfreeServices = lib.filterAttrs (name: _: lib.hasPrefix "innisfree-" name) c.systemd.services;
in
{
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  services = lib.mapAttrs (_: s: {
    inherit (s) wantedBy after path environment restartIfChanged reloadIfChanged;
    reloadTriggers = map toString s.reloadTriggers;
    restartTriggers = map toString s.restartTriggers;
    launcher = s.serviceConfig.ExecStart.text;
    serviceConfig = builtins.removeAttrs s.serviceConfig [ "ExecStart" ];
  }) innisfreeServices;
  # source: the checked tunnel file (a runCommand); text: the JSON it checks; check: the script that checks it.
  etc = lib.mapAttrs (_: e: {
    source = toString e.source;
    text = e.source.unchecked.text or null;
    check = e.source.buildCommand or null;
  }) (lib.filterAttrs (name: _: lib.hasPrefix "innisfree/" name) c.environment.etc);
  users = lib.mapAttrs (_: u: builtins.removeAttrs u [ "openssh" ]) c.users.users;
  kernelModules = c.boot.kernelModules;
  firewall = {
    inherit (c.networking.firewall) checkReversePath;
    interfaces = lib.mapAttrs (_: i: { inherit (i) allowedTCPPortRanges allowedUDPPortRanges; }) c.networking.firewall.interfaces;
  };
}
