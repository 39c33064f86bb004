# An example home host using nixosModules.home (evaluated by `nix flake check` as checks.x86_64-linux.home-example).
# Only the services.innisfree part is the example; the rest makes the configuration complete.
{
  services.innisfree.tunnels.web = {
    ports = [
      "443/tcp"
      "80:8080/tcp"
      # Its own destination: public 2222 reaches SSH on another LAN host.
      {
        public = 2222;
        local = 22;
        destination = "192.168.1.30";
      }
    ];
    destination = "192.168.1.20";
    region = "fra1";
    image = "innisfree-edge";
    tokenFile = "/run/secrets/digitalocean-token";
  };

  boot.loader.grub.device = "nodev";
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };
  system.stateVersion = "26.05";
}
