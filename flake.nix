{
  description = "innisfree: give a service on your home network a public IPv4/IPv6 address through a small cloud VM you own";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    deploy-rs = {
      url = "github:serokell/deploy-rs";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    disko = {
      url = "github:nix-community/disko/v1.13.0";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      deploy-rs,
      disko,
    }:
    let
      inherit (nixpkgs) lib;
      # The CLI drives wg, ip and nftables: Linux only.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # deploy-rs's activation wrapper and checks, built on nixpkgs' own deploy-rs binary (building deploy-rs from
      # its source would fetch crates at build time and is not in the binary cache).
      deployLib =
        system:
        (import nixpkgs {
          inherit system;
          overlays = [
            deploy-rs.overlays.default
            (_final: prev: {
              deploy-rs = {
                inherit (nixpkgs.legacyPackages.${system}) deploy-rs;
                inherit (prev.deploy-rs) lib;
              };
            })
          ];
        }).deploy-rs.lib;

      innisfreeLib = import ./nix/flake-lib.nix {
        inherit self nixpkgs disko deployLib;
      };
    in
    {
      nixosModules = {
        # The edge: services.innisfree = lib.importJSON ./edge.json;
        innisfree = ./modules/edge.nix;
        default = self.nixosModules.innisfree;
        # The home host: services.innisfree.tunnels.<name> = { ... };
        home =
          { lib, pkgs, ... }:
          {
            imports = [ ./modules/home.nix ];
            services.innisfree.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.innisfree;
          };
      };

      lib = {
        inherit (innisfreeLib) mkEdgeSystem mkDeploy deployChecks;
        # The pure renderers (builtins only): EdgeConfig -> nginx stream text, nftables table, firewall lists.
        render = import ./nix/lib;
      };

      packages = forAllSystems (
        system: pkgs:
        {
          innisfree = pkgs.callPackage ./nix/package.nix { innisfreeFlake = self.outPath; };
          default = self.packages.${system}.innisfree;
        }
        // lib.optionalAttrs (system == "x86_64-linux") {
          # A DigitalOcean custom image (qcow2.gz) with the edge's base configuration.
          edge-image = innisfreeLib.edgeImage.config.system.build.digitalOceanImage;
        }
      );

      apps = forAllSystems (
        system: _pkgs: {
          innisfree = {
            type = "app";
            program = lib.getExe self.packages.${system}.innisfree;
            meta.description = "innisfree command line: up, down, status, plan, …";
          };
          default = self.apps.${system}.innisfree;
        }
      );

      checks = {
        x86_64-linux = import ./nix/checks.nix {
          inherit self lib innisfreeLib;
          pkgs = nixpkgs.legacyPackages.x86_64-linux;
          deployLib = deployLib "x86_64-linux";
        };
      };
    };
}
