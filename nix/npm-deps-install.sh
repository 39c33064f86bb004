#!/usr/bin/env bash
# Installs innisfree's runtime npm dependencies — no devDependencies, no install scripts — as the lock file
# pins them, from SRC/{package.json,package-lock.json} into OUT/node_modules.
# The one recipe behind both the fixed-output derivation (nix/npm-deps.nix) and nix/npm-deps-hash.sh, so the hash
# the script prints is the hash the derivation produces.
# The lock file names no registry: npm uses its configured one (NPM_CONFIG_REGISTRY to override).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: npm-deps-install.sh SRC OUT" >&2
  exit 2
fi
src=$1
out=$2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$work/"
cd "$work"
# A private cache: nothing from an earlier install can leak in.
npm ci --omit=dev --ignore-scripts --no-audit --no-fund --no-update-notifier --loglevel=error --cache "$work/.cache"
# npm's own bookkeeping (it records where tarballs came from, which differs between npm configurations) and the
# command shims are not needed at run time: the CLI starts node on its own files.
rm -rf node_modules/.package-lock.json node_modules/.bin
mkdir -p "$out"
mv node_modules "$out/node_modules"
