#!/usr/bin/env bash
# Makes DigitalOcean's metadata service (169.254.169.254) reachable before the droplet has an address. Droplets
# from stock images (the nixos-anywhere path) get no DHCP: their addresses are only in the metadata, which cloud-init
# reaches the same way, through an IPv4 link-local address on the first Ethernet interface. Custom-image droplets
# have DHCP as well; the link-local address changes nothing for them. Idempotent.
# Needs ip and awk.
set -euo pipefail

dev=$(ip -o link show | awk '/link\/ether/ { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2; exit }')
if [ -z "$dev" ]; then
  echo "no Ethernet interface: cannot reach the metadata service" >&2
  exit 0
fi
ip link set "$dev" up
mac=$(ip -o link show dev "$dev" | awk '{ for (i = 1; i < NF; i++) if ($i == "link/ether") print $(i + 1) }')
# 169.254.A.B from the MAC's last two bytes, kept out of .0, .255 and the metadata address's own subnet.
IFS=: read -r -a bytes <<<"$mac"
a=$(((16#${bytes[4]} % 253) + 1))
b=$(((16#${bytes[5]} % 253) + 1))
[ "$a" -eq 169 ] && a=170
ip address replace "169.254.$a.$b/16" dev "$dev" scope link
echo "metadata service reachable through $dev (169.254.$a.$b/16)"
