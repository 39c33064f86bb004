#!/usr/bin/env bash
# Configures the droplet's public IPv6 address (DigitalOcean assigns it statically, without router advertisements)
# and its anchor IPv4 address (where a reserved IP's traffic arrives; replies from it leave through the anchor
# gateway) from the metadata, on the interface with the public MAC address. Idempotent.
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

read -r address6 cidr6 gateway6 < <(jq -r '.interfaces.public[0].ipv6 // {} | "\(.ip_address // "-") \(.cidr // "-") \(.gateway // "-")"' "$metadata")
if [ "$address6" != - ] && [ "$cidr6" != - ] && [ "$gateway6" != - ]; then
  ip -6 address replace "$address6/$cidr6" dev "$dev"
  ip -6 route replace default via "$gateway6" dev "$dev"
  echo "public IPv6 $address6/$cidr6 via $gateway6 on $dev"
fi

read -r anchor netmask gateway < <(jq -r '.interfaces.public[0].anchor_ipv4 // {} | "\(.ip_address // .address // "-") \(.netmask // "-") \(.gateway // "-")"' "$metadata")
if [ "$anchor" != - ] && [ "$netmask" != - ]; then
  prefix=0
  IFS=. read -r -a octets <<<"$netmask"
  for octet in "${octets[@]}"; do
    while [ "$octet" -gt 0 ]; do
      prefix=$((prefix + (octet & 1)))
      octet=$((octet >> 1))
    done
  done
  ip address replace "$anchor/$prefix" dev "$dev"
  if [ "$gateway" != - ]; then
    ip route replace default via "$gateway" dev "$dev" table "$anchor_table"
    ip rule del from "$anchor" table "$anchor_table" 2>/dev/null || true
    ip rule add from "$anchor" table "$anchor_table" priority "$anchor_table"
  fi
  echo "anchor IPv4 $anchor/$prefix on $dev"
fi
