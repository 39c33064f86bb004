# checks.x86_64-linux: the package, evaluation (and build) of example edge and home systems (and of a home system
# whose bad tunnel must fail to build), the renderer contract against the golden fixtures, deploy-rs's own checks,
# and the NixOS VM tests (vm-*: need KVM).
{
  self,
  lib,
  pkgs,
  innisfreeLib,
  deployLib,
}:
let
  plan = ../test/fixtures/plan;
  edgeOf = fixture: innisfreeLib.mkEdgeSystem { edge = plan + "/${fixture}/edge.json"; };
  edgeNginx = edgeOf "web-basic";
  edgeNftables = edgeOf "nftables-ipv6";
  home = lib.nixosSystem {
    system = "x86_64-linux";
    modules = [
      self.nixosModules.home
      ./examples/home.nix
    ];
  };
  # The example with a tunnel the CLI refuses (PROXY protocol with kernel DNAT on the edge): its module options
  # are all well-typed, so only the build-time `innisfree check` can stop it.
  badHome = lib.nixosSystem {
    system = "x86_64-linux";
    modules = [
      self.nixosModules.home
      ./examples/home.nix
      {
        services.innisfree.tunnels.web = {
          forwarding = "nftables";
          proxyProtocol = [ 443 ];
        };
      }
    ];
  };
  badTunnelFile = pkgs.testers.testBuildFailure badHome.config.environment.etc."innisfree/tunnels/web.json".source;

  # The same contract test/nix/renderers.test.ts checks, at evaluation time.
  render = import ./lib;
  fixtures = builtins.attrNames (lib.filterAttrs (_: type: type == "directory") (builtins.readDir plan));
  mismatched = builtins.filter (
    name: render.render (lib.importJSON (plan + "/${name}/edge.json")) != lib.importJSON (plan + "/${name}/render.json")
  ) fixtures;

  deploy.nodes.example = innisfreeLib.mkDeploy {
    nixosConfiguration = edgeNginx;
    hostname = "203.0.113.10";
  };
in
{
  innisfree = self.packages.x86_64-linux.innisfree;
  edge-example-nginx = edgeNginx.config.system.build.toplevel;
  edge-example-nftables = edgeNftables.config.system.build.toplevel;
  # What nixos-anywhere runs to partition /dev/vda.
  edge-disko-script = edgeNginx.config.system.build.diskoScript;
  home-example = home.config.system.build.toplevel;
  # A bad tunnel fails the system build: the tunnel file's check exits 2 with the CLI's one line.
  home-refuses-bad-tunnel = pkgs.runCommand "innisfree-home-refuses-bad-tunnel" { } ''
    [ "$(cat ${badTunnelFile}/testBuildFailure.exit)" = 2 ]
    grep -F 'web.json: proxyProtocol: PROXY protocol needs nginx forwarding' ${badTunnelFile}/testBuildFailure.log
    touch $out
  '';
  renderers =
    assert lib.assertMsg (mismatched == [ ])
      "nix/lib renders differently from the golden render.json of: ${toString mismatched} (see test/nix/renderers.test.ts)";
    pkgs.runCommand "innisfree-renderers-contract" { } "touch $out";
  vm-nginx = import ./tests/vm.nix {
    inherit pkgs self;
    forwarding = "nginx";
  };
  vm-nftables = import ./tests/vm.nix {
    inherit pkgs self;
    forwarding = "nftables";
  };
}
// deployLib.deployChecks deploy
