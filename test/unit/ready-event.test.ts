// The ready event: the lines name where each port range goes at home (a port's own destination, else the
// tunnel's); the try-it commands: the IPv4 one always (first TCP port), the IPv6 one only when the edge has a public
// IPv6 and the served config serves IPv6; a provider with an internet client wraps both in its command.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { readyEvent } from '../../src/commands/ready-event.js';
import { createRenderer } from '../../src/lib/progress-renderer.js';
import { plan } from '../../src/plan.js';
import type { Provider } from '../../src/providers/provider.js';
import { flagLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import type { EdgeInfo } from '../../src/state/edge-info.js';

const S = suite('ready event');

S('each range shows its own destination; the tunnel destination stays the default', async () => {
  const spec = resolveTunnelSpec([
    flagLayer({ name: 'web', ports: '443/tcp@192.168.1.20,8000-8001/tcp@192.168.1.20,8002/tcp,53/udp@fd00::53' }),
  ]);
  const { edge } = plan({
    spec,
    allocation: {
      index: 0,
      pool: '10.50.0.0/16',
      interface: 'isf-web',
      edgeInterface: 'ise-web',
      homeAddress: '10.50.0.2/30',
      edgeAddress: '10.50.0.1/30',
    },
    keys: { homeWireguardPublicKey: 'x'.repeat(42) + 'A=', sshPublicKey: 'ssh-ed25519 AAAA test' },
  });
  const info = { ipv4: '203.0.113.7' } as EdgeInfo;
  const event = await readyEvent({} as Provider, spec, info, edge.ipv6);
  assert.equal(event.ports, [
    '203.0.113.7:443/tcp -> 192.168.1.20:443',
    '203.0.113.7:8000-8001/tcp -> 192.168.1.20:8000-8001',
    '203.0.113.7:8002/tcp -> 127.0.0.1:8002',
    '203.0.113.7:53/udp -> [fd00::53]:53',
  ]);
  assert.match(event.tryIt ?? '', /http:\/\/203\.0\.113\.7:443\//);
});

S('the lines are the mappings as written, a range kept whole, PROXY protocol and its version named', async () => {
  const spec = resolveTunnelSpec([
    flagLayer({ name: 'web', ports: '443,444,27015-27030/udp', proxyProtocol: '443', proxyProtocolVersion: '2' }),
  ]);
  const event = await readyEvent({} as Provider, spec, { ipv4: '203.0.113.7' } as EdgeInfo, false);
  assert.equal(event.ports, [
    '203.0.113.7:443/tcp -> 127.0.0.1:443 (PROXY protocol v2)',
    '203.0.113.7:444/tcp -> 127.0.0.1:444',
    '203.0.113.7:27015-27030/udp -> 127.0.0.1:27015-27030',
  ]);
});

S.run();

const R = suite('ready event: try-it commands');

const spec = resolveTunnelSpec([flagLayer({ name: 'web', ports: '80:28080' })]);
const edge: EdgeInfo = {
  provider: 'local',
  id: 'isf-edge-1',
  name: 'innisfree-web',
  tunnel: 'web',
  ipv4: '203.0.113.5',
  ipv6: '2001:db8:1f:1::5',
  region: 'local',
  size: 'netns',
  status: 'running',
  createdAt: '2026-01-01T00:00:00.000Z',
};
const local = {
  clientCommand: async (_name: string, argv: readonly string[]) => ['ip', 'netns', 'exec', 'isf-inet-1', ...argv],
  clientNote: async () => 'the client is 192.0.2.5 and 2001:db8:1f:3::5 in isf-inet-1',
} as unknown as Provider;

R('an edge serving IPv6: both commands, the IPv6 one with the address in brackets', async () => {
  const event = await readyEvent(local, spec, edge, true);
  assert.is(event.tryIt, 'sudo ip netns exec isf-inet-1 curl -sS --max-time 5 http://203.0.113.5:80/');
  assert.is(event.tryIt6, 'sudo ip netns exec isf-inet-1 curl -sS --max-time 5 http://[2001:db8:1f:1::5]:80/');
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  createRenderer('plain', new PassThrough(), out).emit(event);
  assert.match(text, /Public address: 203\.0\.113\.5 and 2001:db8:1f:1::5\n/);
  assert.match(
    text,
    /\n {2}\(the client is .*\)\nOver IPv6: sudo ip netns exec isf-inet-1 curl .*\[2001:db8:1f:1::5\]:80\/\n/,
  );
});

R('no IPv6 command when the config does not serve IPv6, or the edge has no IPv6', async () => {
  assert.is((await readyEvent(local, spec, edge, false)).tryIt6, undefined);
  const { ipv6: _none, ...v4only } = edge;
  assert.is((await readyEvent(local, spec, v4only, true)).tryIt6, undefined);
  const droplet = await readyEvent({} as Provider, spec, { ...edge, provider: 'digitalocean' }, true);
  assert.is(droplet.tryIt6, 'curl -v http://[2001:db8:1f:1::5]:80/');
});

R.run();
