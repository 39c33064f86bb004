// The tunnel's SSH key in the account, found by fingerprint (never by listing all keys to register one). A
// duplicate POST ("SSH Key is already in use on your account") or an ambiguous one resolves by looking again.
import type { ResourceLedger } from '../../state/resources.js';
import type { DigitalOceanClient } from './client.js';
import { DigitalOceanError } from './api-errors.js';
import { md5Fingerprint } from './fingerprint.js';
import { listAll } from './pagination.js';
import { SshKey, SshKeyEnvelope } from './schemas.js';

/** Finds the key by fingerprint or registers it; a registration is recorded in `ledger` before it is posted. */
export async function ensureSshKey(
  client: DigitalOceanClient,
  name: string,
  publicKey: string,
  ledger?: ResourceLedger,
): Promise<SshKey> {
  const fingerprint = md5Fingerprint(publicKey);
  const existing = await client.find(`/v2/account/keys/${fingerprint}`, SshKeyEnvelope);
  if (existing) return existing.ssh_key;
  const entry = await ledger?.intend('ssh-key', { fingerprint, name });
  let key: SshKey;
  try {
    key = (await client.post('/v2/account/keys', { name, public_key: publicKey.trim() }, SshKeyEnvelope)).ssh_key;
  } catch (error) {
    const duplicate =
      error instanceof DigitalOceanError && error.status === 422 && /already in use/i.test(error.apiMessage ?? '');
    const again =
      duplicate || (error instanceof DigitalOceanError && error.ambiguous)
        ? await client.find(`/v2/account/keys/${fingerprint}`, SshKeyEnvelope)
        : undefined;
    if (!again) {
      // Certainly not made (a plain refusal): nothing to own. Uncertain: the entry stays and is looked for.
      if (entry && !(error instanceof DigitalOceanError && error.ambiguous)) await ledger?.forget(entry);
      throw error;
    }
    // Registered under another name already (a race), it is not this run's to remove.
    if (entry && duplicate) await ledger?.forget(entry);
    key = again.ssh_key;
    if (duplicate) return key;
  }
  if (entry) await ledger?.made(entry, key.id);
  return key;
}

/**
 * Removes the tunnel's key: by fingerprint when the public key is known, else every key named `name` (one listing
 * of the account's keys, which DigitalOcean limits to 10 a minute). Returns how many keys were removed.
 */
export async function deleteSshKey(
  client: DigitalOceanClient,
  name: string,
  publicKey: string | undefined,
): Promise<number> {
  if (publicKey) {
    return (await client.delete(`/v2/account/keys/${md5Fingerprint(publicKey)}`, { missingOk: true })) ? 1 : 0;
  }
  const keys = await listAll(client, '/v2/account/keys', 'ssh_keys', SshKey);
  let removed = 0;
  for (const key of keys.filter((k) => k.name === name)) {
    if (await client.delete(`/v2/account/keys/${key.id}`, { missingOk: true })) removed++;
  }
  return removed;
}
