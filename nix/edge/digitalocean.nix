# The DigitalOcean platform under every innisfree edge, whether it booted our custom image or was installed with
# nixos-anywhere from stock Debian:
# - nixpkgs' DigitalOcean support (virtio, growpart, metadata service), but user data is never run as Nix: the CLI
#   puts a cloud-config JSON object there carrying the edge's SSH host key, and deploy-rs pushes the config.
# - The host key and root's authorized key are installed from that user data before sshd starts, so the CLI's
#   pinned known_hosts entry is right from the first connection (nixos-anywhere copies the same key with
#   --extra-files). Only an ed25519 host key, at /etc/ssh/ssh_host_ed25519_key.
# - The public IPv4 (with its default route), the public IPv6 and the anchor IPv4 address (where a reserved IP
#   arrives) from the metadata, reached through a link-local address first: stock-image droplets (nixos-anywhere)
#   get no DHCP, only custom images do, so an installed system relying on DHCP would reboot unreachable.
# - One root file system and boot loader for both layouts: the image's (MBR, one partition) and disko's (GPT with
#   a BIOS boot partition); both label the root "nixos" and grub goes to /dev/vda.
# - The nftables firewall, SSH keys only. DHCP stays on for custom images, as with nixpkgs' DigitalOcean image.
{
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  metadata = "/run/do-metadata/v1.json";
in
{
  imports = [ (modulesPath + "/virtualisation/digital-ocean-config.nix") ];

  virtualisation.digitalOcean.rebuildFromUserData = false;

  fileSystems."/" = lib.mkForce {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  # digital-ocean-config.nix lists /dev/vda and disko adds it again for the EF02 partition; grub refuses the same
  # device twice ("You cannot have duplicated devices in mirroredBoots"), so say it once.
  boot.loader.grub.devices = lib.mkForce [ "/dev/vda" ];
  boot.loader.grub.configurationLimit = lib.mkDefault 20;

  # The nftables firewall from the first boot: the edge module needs it, and switching a running system from the
  # iptables firewall to nftables during a deploy would be needlessly risky.
  networking.nftables.enable = true;

  services.openssh = {
    enable = true;
    hostKeys = [
      {
        type = "ed25519";
        path = "/etc/ssh/ssh_host_ed25519_key";
      }
    ];
    # The same hardening as the edge module's (X11Forwarding = false is also NixOS's default).
    settings = (lib.importJSON ../edge-settings.json).sshdHardening;
  };

  systemd.services.innisfree-host-key = {
    description = "Install the SSH host key and root key innisfree put into the droplet's user data";
    wantedBy = [ "multi-user.target" ];
    before = [ "sshd.service" ];
    # After nixpkgs' own key service, which writes authorized_keys only when the file does not exist yet.
    after = [
      "digitalocean-metadata.service"
      "digitalocean-ssh-keys.service"
    ];
    wants = [ "digitalocean-metadata.service" ];
    path = [
      pkgs.jq
      pkgs.openssh
      pkgs.coreutils
      pkgs.diffutils
      pkgs.gnugrep
    ];
    environment.INNISFREE_DO_METADATA = metadata;
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = "${pkgs.bash}/bin/bash ${./host-key.sh}";
    };
  };

  systemd.services.innisfree-metadata-link = {
    description = "Reach DigitalOcean's metadata service through a link-local address (no DHCP on stock droplets)";
    wantedBy = [ "multi-user.target" ];
    before = [ "digitalocean-metadata.service" ];
    after = [ "network-pre.target" ];
    path = [
      pkgs.iproute2
      pkgs.gawk
    ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = "${pkgs.bash}/bin/bash ${./metadata-link.sh}";
    };
  };
  systemd.services.digitalocean-metadata = {
    wants = [ "innisfree-metadata-link.service" ];
    after = [ "innisfree-metadata-link.service" ];
  };

  systemd.services.innisfree-public-addresses = {
    description = "Configure the droplet's public IPv4, IPv6 and anchor IPv4 addresses from DigitalOcean metadata";
    wantedBy = [ "multi-user.target" ];
    before = [ "network-online.target" ];
    after = [
      "digitalocean-metadata.service"
      "network.target"
    ];
    wants = [ "digitalocean-metadata.service" ];
    path = [
      pkgs.jq
      pkgs.iproute2
      pkgs.gawk
    ];
    environment.INNISFREE_DO_METADATA = metadata;
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = "${pkgs.bash}/bin/bash ${./public-addresses.sh}";
    };
  };

  documentation.enable = lib.mkDefault false;
  system.stateVersion = lib.mkDefault "26.05";
}
