#!/usr/bin/env bash
# Prints the hash of innisfree's npm runtime dependencies exactly as the fixed-output derivation nix/npm-deps.nix
# computes it: the same install recipe (nix/npm-deps-install.sh) into a clean directory, then `nix hash path`.
#   nix/npm-deps-hash.sh           print the hash
#   nix/npm-deps-hash.sh --write   also store it in nix/npm-deps.hash (after package-lock.json changed)
#   nix/npm-deps-hash.sh --check   fail unless it equals nix/npm-deps.hash
# Needs npm (ideally the major version of the pinned nixpkgs' nodejs), nix, and the npm registry.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hash_file="$root/nix/npm-deps.hash"
mode=${1:-print}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$root/nix/npm-deps-install.sh" "$root" "$work/out" >&2
hash=$(nix --extra-experimental-features nix-command hash path --type sha256 "$work/out")

case "$mode" in
  print) echo "$hash" ;;
  --write)
    echo "$hash" >"$hash_file"
    echo "$hash"
    ;;
  --check)
    expected=$(cat "$hash_file")
    if [ "$hash" != "$expected" ]; then
      echo "npm dependencies hash $hash differs from nix/npm-deps.hash ($expected); run nix/npm-deps-hash.sh --write" >&2
      exit 1
    fi
    echo "$hash"
    ;;
  *)
    echo "usage: npm-deps-hash.sh [--write|--check]" >&2
    exit 2
    ;;
esac
