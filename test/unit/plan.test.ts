import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type HomeHostFacts, chooseHomeForwarding, hashEdgeConfig, plan } from '../../src/plan.js';
import { EdgeConfig, serializeEdgeConfig } from '../../src/spec/edge-config.js';
import { fileLayer, resolveTunnelSpec } from '../../src/spec/sources.js';
import { schemaCommand } from '../../src/commands/schema.js';
import { repoRoot } from '../helpers/cli.js';
import { planFixtureNames, readPlanFixture, updating, writeFixtureFile } from '../helpers/fixtures.js';

const schemaPath = join(repoRoot, 'nix', 'edge-config.schema.json');

function planFixture(name: string) {
  const { input } = readPlanFixture(name);
  const spec = resolveTunnelSpec([fileLayer('input.json', input.tunnel)]);
  return plan({ spec, allocation: input.allocation, keys: input.keys });
}

// ---
const golden = suite('plan: golden fixtures (shared with the Nix tests)');

for (const name of planFixtureNames()) {
  golden(`${name}: edge.json and home.json match`, () => {
    const result = planFixture(name);
    const edge = serializeEdgeConfig(result.edge);
    const home = `${JSON.stringify(result.home, null, 2)}\n`;
    if (updating) {
      writeFixtureFile(name, 'edge.json', edge);
      writeFixtureFile(name, 'home.json', home);
    }
    const expected = readPlanFixture(name);
    assert.fixture(edge, expected.edge ?? '(missing edge.json: run with UPDATE_FIXTURES=1)');
    assert.fixture(home, expected.home ?? '(missing home.json: run with UPDATE_FIXTURES=1)');
  });
}

golden.run();

// ---
const schema = suite('plan: the committed JSON Schema');

schema('nix/edge-config.schema.json is current (regenerate with npm run schema)', async () => {
  const committed = readFileSync(schemaPath, 'utf8');
  assert.fixture(committed, (await schemaCommand()).output ?? '');
});

schema('every fixture edge.json validates against the committed schema', () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
  for (const name of planFixtureNames()) {
    const edge = JSON.parse(readPlanFixture(name).edge ?? '{}');
    assert.ok(validate(edge), `${name}: ${ajv.errorsText(validate.errors)}`);
  }
});

schema('the schema rejects what the contract forbids', () => {
  const ajv = new Ajv2020({ strict: false });
  const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
  const edge = JSON.parse(readPlanFixture('web-basic').edge!);
  assert.not.ok(validate({ ...edge, extra: 1 }), 'unknown top-level field');
  assert.not.ok(validate({ ...edge, ports: [] }), 'no ports');
  assert.not.ok(validate({ ...edge, ports: [{ ...edge.ports[0], publicPort: 70000 }] }), 'port out of range');
  assert.not.ok(validate({ ...edge, forwarding: 'haproxy' }), 'unknown forwarding');
  assert.not.ok(
    validate({ ...edge, wireguard: { ...edge.wireguard, interface: 'this-name-is-too-long' } }),
    'interface name > 15',
  );
});

schema.run();

// ---
const rules = suite('plan: rules');

rules('the edge config hash is the sha256 of the exact edge.json bytes', () => {
  const result = planFixture('web-basic');
  assert.is(result.configHash, hashEdgeConfig(result.edge));
  assert.match(result.configHash, /^[0-9a-f]{64}$/);
});

rules('nothing secret is in the edge config', () => {
  for (const name of planFixtureNames()) {
    const text = readPlanFixture(name).edge ?? '';
    assert.not.match(text, /PRIVATE KEY|privateKey/);
  }
});

rules('nftables mode routes replies to clients back through the tunnel', () => {
  const result = planFixture('nftables-ipv6');
  assert.equal(result.home.allowedIps, ['0.0.0.0/0', '::/0']);
  assert.ok(result.home.policyRouting);
  assert.equal(result.home.policyRouting!.from, ['10.50.255.254', 'fd49:6e6e:6973:3fff::2']);
  assert.equal(result.home.forwards, [], 'destination none runs no forwarder');
});

rules('nginx mode only routes the edge address', () => {
  const result = planFixture('web-basic');
  assert.equal(result.home.allowedIps, ['10.50.0.1/32']);
  assert.is(result.home.policyRouting, null);
});

rules('several public ports to one local port share one home listener', () => {
  const result = planFixture('proxy-protocol');
  assert.equal(
    result.home.forwards.map((f) => `${f.listenPort}/${f.protocol}`),
    ['25/tcp', '443/tcp'],
  );
  assert.equal(
    result.edge.ports.map((p) => `${p.publicPort}->${p.localPort}${p.proxyProtocol ? '+pp' : ''}`),
    ['25->25', '443->443+pp', '8443->443'],
  );
});

rules('a plan that would break the contract throws', () => {
  const { input } = readPlanFixture('web-basic');
  const spec = resolveTunnelSpec([fileLayer('input.json', input.tunnel)]);
  assert.throws(() =>
    plan({ spec, allocation: input.allocation, keys: { ...input.keys, homeWireguardPublicKey: 'nope' } }),
  );
  assert.ok(EdgeConfig.safeParse(plan({ spec, allocation: input.allocation, keys: input.keys }).edge).success);
});

const KERNEL_HOST: HomeHostFacts = { kernelForwarding: true, localAddresses: ['192.168.1.5'] };

function planWith(name: string, tunnel: Record<string, unknown>, homeHost?: HomeHostFacts) {
  const { input } = readPlanFixture(name);
  const spec = resolveTunnelSpec([fileLayer('input.json', { ...input.tunnel, ...tunnel })]);
  return plan({ spec, allocation: input.allocation, keys: input.keys, ...(homeHost ? { homeHost } : {}) });
}

rules('home forwarding: kernel by default for a destination on this host, when the host can', () => {
  const choose = (
    destination: string,
    extra: { homeForwarding?: 'auto' | 'kernel' | 'proxy'; masquerade?: boolean } = {},
    host: HomeHostFacts | null = KERNEL_HOST,
  ) =>
    chooseHomeForwarding(
      { destination, homeForwarding: extra.homeForwarding ?? 'auto', masquerade: extra.masquerade ?? false },
      host ?? undefined,
    );
  assert.is(choose('127.0.0.1'), 'kernel');
  assert.is(choose('192.168.1.5'), 'kernel', "one of this host's own addresses");
  assert.is(choose('192.168.1.20'), 'proxy', 'another host needs a route back: kernel only when asked for');
  assert.is(choose('192.168.1.20', { masquerade: true }), 'kernel');
  assert.is(choose('192.168.1.20', { homeForwarding: 'kernel' }), 'kernel');
  assert.is(choose('nas.lan'), 'proxy', 'host names go through the forwarder');
  assert.is(choose('fd00::10'), 'proxy', 'IPv6 destinations go through the forwarder');
  assert.is(choose('127.0.0.1', {}, null), 'proxy', 'no facts: no kernel forwarding');
  assert.is(choose('127.0.0.1', {}, { kernelForwarding: false, localAddresses: [] }), 'proxy', 'no nft or no root');
  assert.is(choose('127.0.0.1', { homeForwarding: 'proxy' }), 'proxy');
  assert.is(choose('none'), 'none');
});

rules('kernel home forwarding marks replies and lets loopback replies start in the tunnel table', () => {
  const result = planWith('web-basic', { destination: '127.0.0.1' }, KERNEL_HOST);
  assert.is(result.home.forwarding, 'kernel');
  assert.ok(result.home.policyRouting);
  const routing = result.home.policyRouting!;
  assert.is(routing.fwmark, routing.table, 'the mark is the table number');
  assert.equal(routing.localFrom, ['127.0.0.1']);
  assert.equal(routing.from, [], 'nginx on the edge: no source rule for client addresses');
  assert.is(result.home.masquerade, false);
  assert.ok(result.home.forwards.length > 0, 'the forwards describe what the table DNATs');
  const edge = planWith('web-basic', { destination: '127.0.0.1' }).edge;
  assert.equal(result.edge, edge, 'the home path does not change the edge config');
});

rules('masquerade reaches the home plan only with kernel forwarding', () => {
  const result = planWith(
    'web-basic',
    { destination: '192.168.1.20', masquerade: true, forwarding: 'nftables' },
    KERNEL_HOST,
  );
  assert.is(result.home.forwarding, 'kernel');
  assert.is(result.home.masquerade, true);
  assert.equal(result.home.policyRouting!.localFrom, [], 'another host: no loopback rule');
  assert.is(
    planWith('web-basic', { destination: '192.168.1.20', masquerade: true }).home.masquerade,
    false,
    'no kernel here',
  );
});

rules('per-port destinations: each forward goes to its own host, the tunnel destination stays the default', () => {
  const result = planWith(
    'web-basic',
    { ports: ['443/tcp@192.168.1.20', '80:8080/tcp', '53/udp@192.168.1.53'], destination: '127.0.0.1' },
    KERNEL_HOST,
  );
  const targets = result.home.forwards.map((f) => `${f.protocol}/${f.listenPort}->${f.targetHost}:${f.targetPort}`);
  assert.equal(targets, ['tcp/443->192.168.1.20:443', 'tcp/8080->127.0.0.1:8080', 'udp/53->192.168.1.53:53']);
  assert.is(result.home.destination, '127.0.0.1');
  assert.is(
    result.home.forwarding,
    'proxy',
    'auto: hosts elsewhere without --masquerade need a route back, so the forwarder',
  );
  assert.equal(JSON.stringify(result.edge).includes('192.168.1.20'), false, 'the edge never learns home destinations');
  const masqueraded = planWith(
    'web-basic',
    { ports: ['443/tcp@192.168.1.20', '80:8080/tcp'], masquerade: true },
    KERNEL_HOST,
  );
  assert.is(masqueraded.home.forwarding, 'kernel');
  assert.equal(masqueraded.home.policyRouting!.localFrom, ['127.0.0.1'], 'only the loopback destinations');
  const local = planWith('web-basic', { ports: ['443/tcp@192.168.1.5', '80:8080/tcp'] }, KERNEL_HOST);
  assert.is(local.home.forwarding, 'kernel', "this host's own address and loopback: kernel");
  const named = planWith('web-basic', { ports: ['443/tcp@nas.lan', '80:8080/tcp'] }, KERNEL_HOST);
  assert.is(named.home.forwarding, 'proxy', 'a host name anywhere: the forwarder');
  assert.equal(
    named.home.forwards.map((f) => f.targetHost),
    ['nas.lan', '127.0.0.1'],
  );
});

rules(
  "PROXY v2: the forwarder turns the edge's v1 headers into v2 on the PROXY ports only; auto picks the forwarder",
  () => {
    const result = planWith(
      'web-basic',
      { ports: ['443/tcp', '80:8080/tcp'], proxyProtocol: ['443'], proxyProtocolVersion: 2, destination: '127.0.0.1' },
      KERNEL_HOST,
    );
    assert.is(result.home.forwarding, 'proxy', 'kernel forwarding cannot rewrite the header');
    assert.equal(
      result.home.forwards.map((f) => [f.listenPort, f.proxyProtocol]),
      [
        [443, 'v1-to-v2'],
        [8080, undefined],
      ],
    );
    assert.equal(result.edge.ports.find((p) => p.publicPort === 443)?.proxyProtocol, true, 'nginx still sends v1');
    const v1 = planWith(
      'web-basic',
      { ports: ['443/tcp'], proxyProtocol: ['443'], destination: '127.0.0.1' },
      KERNEL_HOST,
    );
    assert.equal(
      v1.home.forwards.map((f) => f.proxyProtocol),
      [undefined],
      'v1 passes unchanged',
    );
  },
);

rules.run();
