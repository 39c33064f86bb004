# The DigitalOcean custom image: `nix build .#edge-image` gives a directory with one *.qcow2.gz to upload.
{ modulesPath, ... }:
{
  imports = [ (modulesPath + "/virtualisation/digital-ocean-image.nix") ];
}
