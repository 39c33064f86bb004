#!/usr/bin/env bash
# innisfree-edge-status: prints the edge's state as one JSON object (the EdgeStatus schema in
# src/spec/edge-config.ts), read by the CLI over SSH. Written once for both kinds of edge: NixOS wraps it with its
# values (modules/edge.nix), the local provider runs it inside its namespace with its own.
#
# Configured by environment variables:
#   INNISFREE_EDGE_NAME              tunnel name
#   INNISFREE_EDGE_INTERFACE         WireGuard interface
#   INNISFREE_EDGE_FORWARDING        nginx | nftables
#   INNISFREE_EDGE_HASH_FILE         file holding the sha256 (hex) of the deployed edge.json; absent -> null
#   INNISFREE_EDGE_FORWARDER_CHECK   shell command that succeeds while the forwarder is active
# Needs bash, coreutils, wg and ss. Never reads the interface's private key.
# With nginx forwarding, forwarder.listening lists the ports nginx really has bound (a reload that could not bind a
# new port leaves the old config serving while the unit stays active): the CLI confirms a deploy only when every
# planned public port is there. With nftables there is no listener to list (the DNAT table is the check).
set -euo pipefail

name=${INNISFREE_EDGE_NAME:?INNISFREE_EDGE_NAME is not set}
interface=${INNISFREE_EDGE_INTERFACE:?INNISFREE_EDGE_INTERFACE is not set}
forwarding=${INNISFREE_EDGE_FORWARDING:?INNISFREE_EDGE_FORWARDING is not set}
hash_file=${INNISFREE_EDGE_HASH_FILE:-}
forwarder_check=${INNISFREE_EDGE_FORWARDER_CHECK:-false}

case "$forwarding" in
  nginx | nftables) ;;
  *)
    echo "innisfree-edge-status: INNISFREE_EDGE_FORWARDING must be nginx or nftables, not \"$forwarding\"" >&2
    exit 2
    ;;
esac

# A JSON string literal; the values here are names, keys and addresses, but escape anyway.
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

# A non-negative integer, or 0 for anything else (wg prints numbers, but a stub or a new format might not).
json_count() {
  if [[ $1 =~ ^[0-9]+$ ]]; then printf '%s' "$((10#$1))"; else printf '0'; fi
}

config_hash=null
if [[ -n "$hash_file" && -r "$hash_file" ]]; then
  read -r value <"$hash_file" || true
  if [[ ${value:-} =~ ^[0-9a-f]{64}$ ]]; then config_hash=$(json_string "$value"); fi
fi

public_key=null
up=false
peers=""
if key=$(wg show "$interface" public-key 2>/dev/null) && [[ -n "$key" ]]; then
  public_key=$(json_string "$key")
  # IFF_UP is bit 0 of the interface flags.
  if [[ -r "/sys/class/net/$interface/flags" ]]; then
    read -r flags <"/sys/class/net/$interface/flags" || flags=0
    if (((flags & 1) == 1)); then up=true; fi
  fi
  # `wg show IF dump`: the interface line first (skipped unread: it holds the private key), then per peer:
  # public-key preshared-key endpoint allowed-ips latest-handshake transfer-rx transfer-tx persistent-keepalive
  dump=$(wg show "$interface" dump 2>/dev/null | tail -n +2) || dump=""
  while IFS=$'\t' read -r peer _preshared endpoint _allowed handshake rx tx _keepalive; do
    [[ -n "$peer" ]] || continue
    if [[ -z "$endpoint" || "$endpoint" == "(none)" ]]; then endpoint_json=null; else endpoint_json=$(json_string "$endpoint"); fi
    entry="{\"publicKey\":$(json_string "$peer"),\"endpoint\":$endpoint_json"
    entry+=",\"latestHandshake\":$(json_count "$handshake"),\"rxBytes\":$(json_count "$rx"),\"txBytes\":$(json_count "$tx")}"
    peers+="${peers:+,}$entry"
  done <<<"$dump"
fi

active=false
if bash -c "$forwarder_check" >/dev/null 2>&1; then active=true; fi

# `ss -Hlnp`: state recv-q send-q local-address:port peer users:(("nginx",pid=…,fd=…),…); one entry per port and
# protocol, whatever the address family.
listening=""
if [[ "$forwarding" == nginx ]]; then
  for protocol in tcp udp; do
    flag=-t
    [[ "$protocol" == udp ]] && flag=-u
    ports=$(ss -Hlnp "$flag" 2>/dev/null | awk '/users:\(\("nginx"/ { n = split($4, a, ":"); print a[n] }' | sort -nu) || ports=""
    for port in $ports; do
      listening+="${listening:+,}{\"protocol\":\"$protocol\",\"port\":$(json_count "$port")}"
    done
  done
  listening_json="[$listening]"
else
  listening_json=null
fi

printf '{"name":%s,"configHash":%s,"wireguard":{"interface":%s,"publicKey":%s,"up":%s,"peers":[%s]},"forwarder":{"kind":%s,"active":%s,"listening":%s}}\n' \
  "$(json_string "$name")" "$config_hash" "$(json_string "$interface")" "$public_key" "$up" "$peers" \
  "$(json_string "$forwarding")" "$active" "$listening_json"
