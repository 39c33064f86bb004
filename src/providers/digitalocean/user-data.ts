// The droplet's user_data: "#cloud-config" followed by ONE JSON object (JSON is YAML, so Debian's cloud-init reads
// it; innisfree's NixOS image drops the first line and reads it with jq). It installs the host key the home side
// already pinned, so the first SSH contact is verified (no trust on first use), and authorizes the tunnel's key.
// It carries a private key: it is sent to DigitalOcean only, never logged, never put in argv or the Nix store.
import { UsageError } from '../../lib/errors.js';
import type { EdgeIdentity } from '../../state/edge-info.js';

/** DigitalOcean refuses user_data above 64 KiB. */
export const USER_DATA_LIMIT = 64 * 1024;

export interface EdgeCloudConfig {
  ssh_keys: { ed25519_private: string; ed25519_public: string };
  ssh_deletekeys: true;
  disable_root: false;
  ssh_authorized_keys: string[];
}

export function renderUserData(identity: EdgeIdentity): string {
  const privateKey = identity.hostKey.privateKey.trim();
  const publicKey = identity.hostKey.publicKey.trim();
  const authorized = identity.sshPublicKey.trim();
  if (!/^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----$/.test(privateKey)) {
    throw new UsageError('the edge host key is not an OpenSSH private key', {
      hint: 'remove ssh/edge_host_ed25519_key* from the tunnel state so a new one is made',
    });
  }
  for (const [line, what] of [
    [publicKey, 'the edge host public key'],
    [authorized, 'the tunnel SSH public key'],
  ] as const) {
    if (!/^ssh-ed25519 [A-Za-z0-9+/]+={0,2}( [^\n]*)?$/.test(line)) {
      throw new UsageError(`${what} is not a single ssh-ed25519 line`, {
        hint: 'remove the tunnel state (innisfree down NAME) so fresh keys are made',
      });
    }
  }
  const config: EdgeCloudConfig = {
    ssh_keys: { ed25519_private: `${privateKey}\n`, ed25519_public: publicKey },
    ssh_deletekeys: true,
    disable_root: false,
    ssh_authorized_keys: [authorized],
  };
  const userData = `#cloud-config\n${JSON.stringify(config)}\n`;
  if (Buffer.byteLength(userData) > USER_DATA_LIMIT) {
    throw new UsageError(
      `user_data is ${Buffer.byteLength(userData)} bytes; DigitalOcean accepts at most ${USER_DATA_LIMIT}`,
      {
        hint: 'the SSH keys are unexpectedly large; remove the tunnel state so fresh ed25519 keys are made',
      },
    );
  }
  return userData;
}
