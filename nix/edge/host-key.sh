#!/usr/bin/env bash
# Installs the SSH host key and root's authorized keys that innisfree put into the droplet's user data, before sshd
# starts. The user data is "#cloud-config" and one JSON object:
#   {"ssh_keys":{"ed25519_private":"…","ed25519_public":"…"},"ssh_deletekeys":true,
#    "disable_root":false,"ssh_authorized_keys":["ssh-ed25519 …"]}
# (cloud-init on stock Debian reads the same document, so a nixos-anywhere edge has the key from its first boot.)
# Run on every boot; writes nothing when nothing changed. Never prints a key.
# Environment: INNISFREE_DO_METADATA (the metadata JSON), INNISFREE_SSH_DIR (/etc/ssh),
# INNISFREE_ROOT_SSH_DIR (/root/.ssh). Needs jq, ssh-keygen, coreutils, grep.
set -euo pipefail

metadata=${INNISFREE_DO_METADATA:-/run/do-metadata/v1.json}
ssh_dir=${INNISFREE_SSH_DIR:-/etc/ssh}
root_ssh_dir=${INNISFREE_ROOT_SSH_DIR:-/root/.ssh}

if [ ! -r "$metadata" ]; then
  echo "no DigitalOcean metadata at $metadata; keeping the current host key"
  exit 0
fi
userdata=$(jq -r '.user_data // ""' "$metadata")
case "$userdata" in
  "#cloud-config"*) ;;
  *)
    echo "the user data is not a cloud-config; nothing to install"
    exit 0
    ;;
esac
config=$(printf '%s\n' "$userdata" | tail -n +2)
if ! printf '%s' "$config" | jq -e 'type == "object"' >/dev/null 2>&1; then
  echo "the user data is not innisfree's JSON cloud-config; nothing to install"
  exit 0
fi

private=$(printf '%s' "$config" | jq -r '.ssh_keys.ed25519_private // ""')
public=$(printf '%s' "$config" | jq -r '.ssh_keys.ed25519_public // ""')
if [ -n "$private" ] && [ -n "$public" ]; then
  umask 077
  mkdir -p "$ssh_dir"
  candidate=$(mktemp "$ssh_dir/.innisfree-host-key.XXXXXX")
  printf '%s\n' "$private" >"$candidate"
  # Install the pair only if it is one: a mismatch would make every later connection fail the pin.
  derived=$(ssh-keygen -y -f "$candidate" 2>/dev/null | cut -d' ' -f1-2 || true)
  if [ -z "$derived" ] || [ "$derived" != "$(printf '%s' "$public" | cut -d' ' -f1-2)" ]; then
    rm -f "$candidate"
    echo "the host key pair in the user data is unusable or does not match; keeping the current host key" >&2
  elif cmp -s "$candidate" "$ssh_dir/ssh_host_ed25519_key"; then
    rm -f "$candidate"
    echo "the host key from the user data is installed already"
  else
    mv "$candidate" "$ssh_dir/ssh_host_ed25519_key"
    printf '%s\n' "$public" >"$ssh_dir/ssh_host_ed25519_key.pub"
    chmod 0644 "$ssh_dir/ssh_host_ed25519_key.pub"
    echo "installed the SSH host key from the user data"
  fi
  if [ "$(printf '%s' "$config" | jq -r '.ssh_deletekeys // false')" = true ]; then
    rm -f "$ssh_dir"/ssh_host_rsa_key "$ssh_dir"/ssh_host_rsa_key.pub "$ssh_dir"/ssh_host_ecdsa_key "$ssh_dir"/ssh_host_ecdsa_key.pub
  fi
fi

mkdir -p "$root_ssh_dir"
chmod 0700 "$root_ssh_dir"
touch "$root_ssh_dir/authorized_keys"
chmod 0600 "$root_ssh_dir/authorized_keys"
added=0
while IFS= read -r key; do
  if [ -n "$key" ] && ! grep -qxF -- "$key" "$root_ssh_dir/authorized_keys"; then
    printf '%s\n' "$key" >>"$root_ssh_dir/authorized_keys"
    added=$((added + 1))
  fi
done < <(printf '%s' "$config" | jq -r '.ssh_authorized_keys // [] | .[] | strings')
echo "authorized keys for root: $added added"
