# Evaluates nix/flake-lib.nix (mkEdgeSystem, mkDeploy) and nix/tests/vm.nix with stand-ins for nixpkgs, disko and
# deploy-rs, so the tests can check how they wire things without fetching nixpkgs:
#   nix-instantiate --eval --strict --json test/nix/eval-flake-lib.nix --arg nixpkgsLib /path/to/nixpkgs/lib \
#     --argstr edgeJson /abs/edge.json
{
  nixpkgsLib,
  edgeJson,
}:
let
  lib = import nixpkgsLib;
  stubs = import ./nixos-stubs.nix { inherit lib; };
  nixpkgs = {
    lib = lib // {
      # Returns what it was given, plus the one config value mkDeploy reads.
      nixosSystem = args: args // { config.services.innisfree.ssh.port = 2222; };
    };
  };
  self = {
    nixosModules.innisfree = ../../modules/edge.nix;
  };
  disko.nixosModules.disko = "disko module";
  deployLib = system: {
    activate.nixos = configuration: {
      activated = system;
      modules = builtins.length configuration.modules;
    };
  };
  flakeLib = import ../../nix/flake-lib.nix { inherit self nixpkgs disko deployLib; };

  # The modules that carry values (the rest are paths to module files).
  valuesOf = system: builtins.filter builtins.isAttrs system.modules;
  describe = system: {
    inherit (system) system;
    files = map (m: if builtins.isPath m then baseNameOf m else m) (builtins.filter (m: !builtins.isAttrs m) system.modules);
    values = valuesOf system;
  };

  edgeValue = lib.importJSON edgeJson;
  vmTest =
    forwarding:
    import ../../nix/tests/vm.nix {
      inherit forwarding self;
      pkgs = stubs.pkgs // {
        inherit lib;
        socat = stubs.pkgs.bash // { name = "socat"; };
        writeText = name: _text: { outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
        testers.runNixOSTest = test: test;
      };
    };
  # The VM test's edge node through the real edge module (with the stub NixOS options).
  vmEdge =
    test:
    let
      node = test.nodes.edge;
      evaluated = lib.evalModules {
        modules = [
          stubs.module
          { options.virtualisation.vlans = lib.mkOption { type = lib.types.listOf lib.types.int; }; }
        ]
        ++ node.imports
        ++ [ (builtins.removeAttrs node [ "imports" ]) ];
        specialArgs = { inherit (stubs) pkgs; };
      };
    in
    {
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) evaluated.config.assertions);
      inherit (evaluated.config.networking.firewall) allowedTCPPorts allowedUDPPorts;
    };
in
{
  fromFile = describe (flakeLib.mkEdgeSystem { edge = /. + edgeJson; });
  fromValue = describe (flakeLib.mkEdgeSystem { edge = edgeValue; });
  explicitHash = describe (
    flakeLib.mkEdgeSystem {
      edge = /. + edgeJson;
      configHash = "0000000000000000000000000000000000000000000000000000000000000000";
    }
  );
  deploy = flakeLib.mkDeploy {
    nixosConfiguration = flakeLib.mkEdgeSystem { edge = edgeValue; };
    hostname = "203.0.113.10";
  };
  vm = lib.genAttrs [ "nginx" "nftables" ] (
    forwarding:
    let
      test = vmTest forwarding;
    in
    {
      inherit (test) name testScript;
      nodes = builtins.attrNames test.nodes;
      edge = vmEdge test;
    }
  );
}
