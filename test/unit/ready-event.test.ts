// The ready lines name where each port range goes at home: a port's own destination, else the tunnel's.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readyEvent } from '../../src/commands/ready-event.js';
import { plan } from '../../src/plan.js';
import type { Provider } from '../../src/providers/provider.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import type { EdgeInfo } from '../../src/state/edge-info.js';

const S = suite('ready event');

S('each range shows its own destination; the tunnel destination stays the default', async () => {
  const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports: '443/tcp@192.168.1.20,8000-8001/tcp@192.168.1.20,8002/tcp,53/udp@fd00::53' })]);
  const { edge } = plan({
    spec,
    allocation: { index: 0, pool: '10.50.0.0/16', interface: 'isf-web', edgeInterface: 'ise-web', homeAddress: '10.50.0.2/30', edgeAddress: '10.50.0.1/30' },
    keys: { homeWireguardPublicKey: 'x'.repeat(42) + 'A=', sshPublicKey: 'ssh-ed25519 AAAA test' },
  });
  const info = { ipv4: '203.0.113.7' } as EdgeInfo;
  const event = await readyEvent({} as Provider, spec, info, edge);
  assert.equal(event.ports, [
    '203.0.113.7:443/tcp -> 192.168.1.20:443',
    '203.0.113.7:8000-8001/tcp -> 192.168.1.20:8000-8001',
    '203.0.113.7:8002/tcp -> 127.0.0.1:8002',
    '203.0.113.7:53/udp -> [fd00::53]:53',
  ]);
  assert.match(event.tryIt ?? '', /http:\/\/203\.0\.113\.7:443\//);
});

S.run();
