#!/usr/bin/env bash
# Configures the droplet's public addresses from the metadata, on the interface with the public MAC address: the
# public IPv4 and its default route (stock-image droplets, the nixos-anywhere path, get them from nowhere else:
# DigitalOcean runs DHCP for custom images only), the public IPv6 (assigned statically, without router
# advertisements) and the anchor IPv4 (where a reserved IP's traffic arrives; replies from it leave through the
# anchor gateway), and a reserved IPv6 assigned to the droplet (DigitalOcean routes it to the droplet but leaves
# configuring it to the guest: it goes on lo as a /128, so the edge's [::] listeners accept it). Idempotent.
# Environment: INNISFREE_DO_METADATA (the metadata JSON). Needs jq, ip, awk.
set -euo pipefail

metadata=${INNISFREE_DO_METADATA:-/run/do-metadata/v1.json}
anchor_table=200

[ -r "$metadata" ] || exit 0
mac=$(jq -r '.interfaces.public[0].mac // ""' "$metadata")
[ -n "$mac" ] || exit 0
dev=$(ip -o link | awk -v mac="$mac" 'index(tolower($0), "link/ether " tolower(mac)) { sub(/:$/, "", $2); sub(/@.*/, "", $2); print $2; exit }')
if [ -z "$dev" ]; then
  echo "no interface has the public MAC address $mac" >&2
  exit 0
fi

prefix_of() {
  local prefix=0 octet
  local -a octets
  IFS=. read -r -a octets <<<"$1"
  for octet in "${octets[@]}"; do
    while [ "$octet" -gt 0 ]; do
      prefix=$((prefix + (octet & 1)))
      octet=$((octet >> 1))
    done
  done
  echo "$prefix"
}

read -r address4 netmask4 gateway4 < <(jq -r '.interfaces.public[0].ipv4 // {} | "\(.ip_address // "-") \(.netmask // "-") \(.gateway // "-")"' "$metadata")
if [ "$address4" != - ] && [ "$netmask4" != - ]; then
  ip address replace "$address4/$(prefix_of "$netmask4")" dev "$dev"
  if [ "$gateway4" != - ]; then
    ip route replace default via "$gateway4" dev "$dev"
  fi
  echo "public IPv4 $address4/$(prefix_of "$netmask4") via $gateway4 on $dev"
fi

read -r address6 cidr6 gateway6 < <(jq -r '.interfaces.public[0].ipv6 // {} | "\(.ip_address // "-") \(.cidr // "-") \(.gateway // "-")"' "$metadata")
if [ "$address6" != - ] && [ "$cidr6" != - ] && [ "$gateway6" != - ]; then
  ip -6 address replace "$address6/$cidr6" dev "$dev"
  ip -6 route replace default via "$gateway6" dev "$dev"
  echo "public IPv6 $address6/$cidr6 via $gateway6 on $dev"
fi

read -r anchor netmask gateway < <(jq -r '.interfaces.public[0].anchor_ipv4 // {} | "\(.ip_address // .address // "-") \(.netmask // "-") \(.gateway // "-")"' "$metadata")
if [ "$anchor" != - ] && [ "$netmask" != - ]; then
  prefix=$(prefix_of "$netmask")
  ip address replace "$anchor/$prefix" dev "$dev"
  if [ "$gateway" != - ]; then
    ip route replace default via "$gateway" dev "$dev" table "$anchor_table"
    ip rule del from "$anchor" table "$anchor_table" 2>/dev/null || true
    ip rule add from "$anchor" table "$anchor_table" priority "$anchor_table"
  fi
  echo "anchor IPv4 $anchor/$prefix on $dev"
fi

read -r reserved6 active6 < <(jq -r '.reserved_ip.ipv6 // {} | "\(.ip_address // "-") \(.active // false)"' "$metadata")
if [ "$reserved6" != - ] && [ "$active6" = true ]; then
  ip -6 address replace "$reserved6/128" dev lo
  echo "reserved IPv6 $reserved6/128 on lo"
fi
