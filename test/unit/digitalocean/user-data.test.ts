import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { USER_DATA_LIMIT, renderUserData } from '../../../src/providers/digitalocean/user-data.js';
import { UsageError } from '../../../src/lib/errors.js';
import { testIdentity } from '../../helpers/do.js';

const S = suite('edge user_data');

S('is #cloud-config and one JSON object with the pinned host key and the tunnel key', () => {
  const identity = testIdentity();
  const text = renderUserData(identity);
  const [first, second, ...rest] = text.split('\n');
  assert.is(first, '#cloud-config');
  assert.equal(rest, ['']);
  const config = JSON.parse(second!);
  assert.equal(Object.keys(config), ['ssh_keys', 'ssh_deletekeys', 'disable_root', 'ssh_authorized_keys']);
  assert.is(config.ssh_keys.ed25519_private, `${identity.hostKey.privateKey.trim()}\n`);
  assert.is(config.ssh_keys.ed25519_public, identity.hostKey.publicKey);
  assert.is(config.ssh_deletekeys, true);
  assert.is(config.disable_root, false);
  assert.equal(config.ssh_authorized_keys, [identity.sshPublicKey]);
  assert.ok(Buffer.byteLength(text) < USER_DATA_LIMIT);
});

S('refuses key material that is not what it claims to be', () => {
  const identity = testIdentity();
  assert.throws(
    () => renderUserData({ ...identity, hostKey: { ...identity.hostKey, privateKey: 'not a key' } }),
    (e: unknown) => e instanceof UsageError,
  );
  assert.throws(
    () => renderUserData({ ...identity, sshPublicKey: 'ssh-ed25519 AAAA\nssh-ed25519 BBBB' }),
    (e: unknown) => e instanceof UsageError,
  );
});

S('refuses user_data over 64 KiB', () => {
  const identity = testIdentity();
  const huge = `-----BEGIN OPENSSH PRIVATE KEY-----\n${'A'.repeat(70 * 1024)}\n-----END OPENSSH PRIVATE KEY-----`;
  assert.throws(() => renderUserData({ ...identity, hostKey: { ...identity.hostKey, privateKey: huge } }), /64|65536/);
});

S.run();
