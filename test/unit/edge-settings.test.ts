// nix/edge-settings.json is the one place the sshd hardening and the innisfree-edge-status variables are written:
// the local edge renders them into its own files, and the rendered files say what they said before the move.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EDGE_STATUS_ENV, sshdHardeningLines } from '../../src/edge/edge-settings.js';
import { packageRoot } from '../../src/lib/package-root.js';
import { edgeStatusEnvText, sshdConfigText } from '../../src/providers/local/edge-runtime-files.js';
import { runtimePaths } from '../../src/providers/local/layout.js';

const S = suite('edge settings: one data file for NixOS and local edges');

const json = JSON.parse(readFileSync(join(packageRoot, 'nix', 'edge-settings.json'), 'utf8')) as {
  sshdHardening: Record<string, string | boolean>;
  statusEnvironment: Record<string, string>;
};

S('the local sshd_config has the lines it had when they were written out in TypeScript', () => {
  const text = sshdConfigText(runtimePaths('/run/innisfree/local', 'web'), 2222);
  // What the local edge files module rendered before the settings moved to nix/edge-settings.json.
  const before = [
    '# innisfree local edge: an sshd inside the edge network namespace',
    'Port 2222',
    'HostKey /run/innisfree/local/web/ssh_host_ed25519_key',
    'AuthorizedKeysFile /run/innisfree/local/web/authorized_keys',
    'PidFile /run/innisfree/local/web/sshd.pid',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'StrictModes no',
    'UsePAM no',
    'X11Forwarding no',
    'PrintMotd no',
    'LogLevel INFO',
    'SetEnv PATH=/run/innisfree/local/web/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ' +
      'HOME=/run/innisfree/local/web/home INNISFREE_LOCAL_EDGE_DIR=/run/innisfree/local/web',
    '',
  ];
  assert.equal(text.split('\n').sort(), [...before].sort());
  assert.ok(text.endsWith('\n'));
});

S('every hardening setting of the NixOS edge is in the local sshd_config, yes/no for booleans', () => {
  const lines = sshdConfigText(runtimePaths('/run/x', 'web'), 22).split('\n');
  assert.ok(Object.keys(json.sshdHardening).length >= 4);
  for (const [keyword, value] of Object.entries(json.sshdHardening)) {
    const expected = `${keyword} ${value === true ? 'yes' : value === false ? 'no' : value}`;
    assert.ok(lines.includes(expected), expected);
  }
  assert.equal(sshdHardeningLines().length, Object.keys(json.sshdHardening).length);
});

S('the status variables: the local env file as before, each one read by nix/edge-status.sh', () => {
  assert.is(
    edgeStatusEnvText({
      name: 'web',
      interface: 'ise-web',
      forwarding: 'nftables',
      hashFile: '/h',
      forwarderCheck: 'true',
    }),
    "INNISFREE_EDGE_NAME='web'\nINNISFREE_EDGE_INTERFACE='ise-web'\nINNISFREE_EDGE_FORWARDING='nftables'\n" +
      "INNISFREE_EDGE_HASH_FILE='/h'\nINNISFREE_EDGE_FORWARDER_CHECK='true'\n",
  );
  assert.equal(EDGE_STATUS_ENV, json.statusEnvironment);
  const script = readFileSync(join(packageRoot, 'nix', 'edge-status.sh'), 'utf8');
  for (const name of Object.values(EDGE_STATUS_ENV)) assert.match(script, `\${${name}:`, name);
  // modules/edge.nix exports them by these names too, never spelled out.
  const edgeModule = readFileSync(join(packageRoot, 'modules', 'edge.nix'), 'utf8');
  assert.not.match(edgeModule, /INNISFREE_EDGE_[A-Z_]+=/);
  assert.not.match(edgeModule, /PasswordAuthentication|PermitRootLogin/);
});

S.run();
