# The flake's lib outputs: a NixOS system for an edge droplet built from EdgeConfig JSON, and the deploy-rs node
# that deploys it with magic rollback. The per-tunnel flake the CLI renders (src/templates/flake.nix.ejs) calls
# both; so can anyone managing an edge from their own flake.
{
  self,
  nixpkgs,
  disko,
  deployLib,
}:
let
  inherit (nixpkgs) lib;

  # What every edge runs besides services.innisfree: the DigitalOcean platform and one disk layout that serves
  # both ways onto a droplet (our image, or nixos-anywhere from stock Debian).
  edgeBaseModules = [
    self.nixosModules.innisfree
    disko.nixosModules.disko
    ./edge/digitalocean.nix
    ./edge/disko.nix
  ];
in
{
  # mkEdgeSystem { edge = ./edge.json; } — edge is a path to the JSON `innisfree plan --json` prints, or the value
  # itself. The config hash the edge reports is the file's sha256 unless configHash is given.
  mkEdgeSystem =
    {
      edge,
      configHash ? null,
      system ? "x86_64-linux",
      modules ? [ ],
    }:
    let
      fromFile = builtins.isPath edge || builtins.isString edge;
      value = if fromFile then lib.importJSON edge else edge;
      hash =
        if configHash != null then
          configHash
        else if fromFile then
          builtins.hashFile "sha256" edge
        else
          null;
    in
    nixpkgs.lib.nixosSystem {
      inherit system;
      modules =
        edgeBaseModules
        ++ [
          { services.innisfree = value; }
          { services.innisfree.configHash = hash; }
        ]
        ++ modules;
    };

  # mkDeploy { nixosConfiguration = …; hostname = "203.0.113.10"; } — a deploy-rs node: root over SSH on the edge's
  # SSH port, magic rollback on (a deploy that breaks SSH or the network is rolled back by the edge itself when the
  # confirmation does not arrive in confirmTimeout seconds), auto rollback when activation fails.
  mkDeploy =
    {
      nixosConfiguration,
      hostname,
      sshPort ? nixosConfiguration.config.services.innisfree.ssh.port,
      confirmTimeout ? 60,
      system ? "x86_64-linux",
    }:
    {
      inherit hostname confirmTimeout;
      sshUser = "root";
      user = "root";
      sshOpts = [
        "-p"
        (toString sshPort)
      ];
      magicRollback = true;
      autoRollback = true;
      profiles.system.path = (deployLib system).activate.nixos nixosConfiguration;
    };

  # deploy-rs's checks (JSON schema of `deploy`, activation scripts present) for a flake's `deploy` output.
  deployChecks = deploy: (deployLib "x86_64-linux").deployChecks deploy;

  # The system inside the DigitalOcean custom image: the edge base with services.innisfree not yet enabled; the
  # first deploy turns it into the tunnel's edge.
  edgeImage = nixpkgs.lib.nixosSystem {
    system = "x86_64-linux";
    modules = [
      self.nixosModules.innisfree
      ./edge/digitalocean.nix
      ./edge/image.nix
    ];
  };
}
