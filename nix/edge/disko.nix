# Disk layout for installing an edge with nixos-anywhere onto a DigitalOcean droplet (/dev/vda, BIOS boot):
# GPT with a 1 MiB BIOS boot partition for grub and one ext4 root labelled "nixos", the same label the custom image
# uses, so one edge configuration boots either way (see digitalocean.nix).
{ lib, ... }:
{
  disko.devices.disk.main = {
    type = "disk";
    device = lib.mkDefault "/dev/vda";
    content = {
      type = "gpt";
      partitions = {
        boot = {
          size = "1M";
          type = "EF02";
        };
        root = {
          size = "100%";
          content = {
            type = "filesystem";
            format = "ext4";
            extraArgs = [
              "-L"
              "nixos"
            ];
            mountpoint = "/";
          };
        };
      };
    };
  };
}
