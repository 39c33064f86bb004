// The contract between the TypeScript plan and the Nix edge: every golden edge.json that `innisfree plan` emits
// (test/fixtures/plan/<case>/edge.json) goes through nix/render-edge.nix, and the result must match the reviewed
// golden render.json beside it (UPDATE_FIXTURES=1 rewrites them). TypeScript then checks the rendered text against
// the JSON it came from, port by port.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_PUBLIC_PORTS, parsePortToken } from '../../src/spec/ports.js';
import { shortIdOf } from '../../src/addressing.js';
import type { EdgeConfig } from '../../src/spec/edge-config.js';
import { planFixtureNames, planFixturesDir, readPlanFixture, updating } from '../helpers/fixtures.js';
import { hasNix, nixEvalExpr, nixEvalFailure, nixEvalFile, renderBoth, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

interface Rendered {
  nginxStream: string;
  nftables: { family: string; content: string };
  firewall: { tcp: number[]; udp: number[] };
}

const renderFixture = (name: string): Rendered =>
  nixEvalFile<Rendered>('nix/render-edge.nix', ['--argstr', 'edgeJson', join(planFixturesDir, name, 'edge.json')]);

const edgeOf = (name: string): EdgeConfig => JSON.parse(readPlanFixture(name).edge!) as EdgeConfig;

/** nginx `server { … }` blocks, each as its list of directives. */
function nginxServers(text: string): string[][] {
  const blocks = text.split(/^server \{$/m).slice(1);
  return blocks.map((block) =>
    block
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && line !== '}'),
  );
}

// ---
const golden = suite('renderers: every plan fixture renders to its golden render.json');

golden('nix-instantiate is available', () => {
  if (!hasNix) skipped('Nix renderer tests', 'nix-instantiate is not on PATH (install nix-bin)');
});

for (const name of planFixtureNames()) {
  golden(`${name}: render-edge.nix output matches render.json`, () => {
    if (!hasNix) return;
    const rendered = `${JSON.stringify(renderFixture(name), null, 2)}\n`;
    const goldenPath = join(planFixturesDir, name, 'render.json');
    if (updating) writeFileSync(goldenPath, rendered);
    let expected: string;
    try {
      expected = readFileSync(goldenPath, 'utf8');
    } catch {
      expected = '(missing render.json: run with UPDATE_FIXTURES=1 and review it)';
    }
    assert.fixture(rendered, expected);
  });
}

golden.run();

// ---
const shape = suite('renderers: the text says what the JSON says, port by port');

for (const name of planFixtureNames()) {
  shape(`${name}: only the selected forwarding mode is rendered, firewall lists are exact`, () => {
    if (!hasNix) return;
    const edge = edgeOf(name);
    const rendered = renderFixture(name);
    assert.is(rendered.nftables.family, 'inet');
    if (edge.forwarding === 'nginx') {
      assert.ok(rendered.nginxStream.length > 0);
      assert.is(rendered.nftables.content, '');
    } else {
      assert.is(rendered.nginxStream, '');
      assert.ok(rendered.nftables.content.length > 0);
    }
    const expectTcp = [
      ...new Set([edge.ssh.port, ...edge.ports.filter((p) => p.protocol === 'tcp').map((p) => p.publicPort)]),
    ];
    const expectUdp = [
      ...new Set([
        edge.wireguard.listenPort,
        ...edge.ports.filter((p) => p.protocol === 'udp').map((p) => p.publicPort),
      ]),
    ];
    assert.equal(
      rendered.firewall.tcp,
      expectTcp.sort((a, b) => a - b),
    );
    assert.equal(
      rendered.firewall.udp,
      expectUdp.sort((a, b) => a - b),
    );
  });

  shape(`${name}: one nginx server per port with the right listen, proxy_pass, udp and proxy_protocol`, () => {
    if (!hasNix) return;
    const edge = edgeOf(name);
    const servers = nginxServers(renderBoth(edge).nginxStream);
    assert.is(servers.length, edge.ports.length, 'one server per public port');
    edge.ports.forEach((port, index) => {
      const server = servers[index]!;
      const listens = server.filter((d) => d.startsWith('listen '));
      const udp = port.protocol === 'udp' ? ' udp reuseport' : '';
      const expectedListens = [`listen ${port.publicPort}${udp};`];
      if (edge.ipv6) expectedListens.push(`listen [::]:${port.publicPort}${udp} ipv6only=on;`);
      assert.equal(listens, expectedListens, `${name} port ${port.publicPort}/${port.protocol}: listen`);
      assert.equal(
        server.filter((d) => d.startsWith('proxy_pass ')),
        [`proxy_pass ${edge.wireguard.peer.address}:${port.localPort};`],
      );
      assert.is(server.includes('proxy_protocol on;'), port.proxyProtocol, 'proxy_protocol where asked, nowhere else');
      assert.ok(
        server.some((d) => d.startsWith('proxy_timeout ')),
        'an idle timeout',
      );
      assert.not.ok(
        server.some((d) => d.startsWith('proxy_responses')),
        'UDP replies are never limited',
      );
      if (port.protocol === 'tcp') assert.ok(server.includes('proxy_connect_timeout 10s;'));
    });
  });

  shape(`${name}: nftables DNATs every port to the home tunnel address, without masquerade`, () => {
    if (!hasNix) return;
    const edge = { ...edgeOf(name), forwarding: 'nftables' as const };
    edge.ports = edge.ports.map((p) => ({ ...p, proxyProtocol: false }));
    const text = renderBoth(edge).nftables;
    assert.not.match(text, /masquerade|snat/);
    const rules = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.includes(' dnat '));
    const peer = edge.wireguard.peer;
    const v6 = edge.ipv6 && peer.address6 !== undefined;
    for (const protocol of ['tcp', 'udp'] as const) {
      const ports = edge.ports.filter((p) => p.protocol === protocol);
      const families: Array<{ family: 'ip' | 'ip6'; nfproto: string; address: string }> = [
        { family: 'ip', nfproto: 'ipv4', address: peer.address },
      ];
      if (v6) families.push({ family: 'ip6', nfproto: 'ipv6', address: peer.address6! });
      for (const { family, nfproto, address } of families) {
        const matching = rules.filter((r) => r.includes(`meta nfproto ${nfproto} ${protocol} dport`));
        if (ports.length === 0) {
          assert.is(matching.length, 0);
          continue;
        }
        // prerouting and output each carry the rule once.
        assert.is(matching.length, 2, `${protocol}/${nfproto} rules`);
        for (const rule of matching) {
          assert.ok(rule.includes(`dnat ${family} to ${protocol} dport map {`));
          for (const port of ports) {
            assert.ok(
              rule.includes(`${port.publicPort} : ${address} . ${port.localPort}`),
              `${port.publicPort}/${protocol} → ${address}:${port.localPort}`,
            );
          }
          const mapped = rule.match(/ : /g)?.length ?? 0;
          assert.is(mapped, ports.length, 'no other ports');
        }
      }
    }
    if (!v6) assert.not.match(text, /nfproto ipv6/);
    const tunnel = `"${edge.wireguard.interface}"`;
    assert.match(text, 'policy drop;');
    assert.ok(text.includes(`oifname ${tunnel} ct status dnat accept`), 'forwarding only for the DNATed flows');
  });
}

shape.run();

// ---
const refusals = suite('renderers: invalid configs are refused with what, why and how to fix');

const base = (): EdgeConfig => edgeOf('web-basic');

function refusal(edge: unknown): string | undefined {
  const dir = makeTempDir('innisfree-render-');
  try {
    const file = join(dir.path, 'edge.json');
    writeFileSync(file, JSON.stringify(edge));
    return nixEvalFailure('nix/render-edge.nix', ['--argstr', 'edgeJson', file]);
  } finally {
    dir.remove();
  }
}

const problems = (edge: unknown): string[] =>
  nixEvalExpr<string[]>(`(import ./nix/lib).validate (builtins.fromJSON ${JSON.stringify(JSON.stringify(edge))})`);

refusals('a sound config has no problems', () => {
  if (!hasNix) return;
  for (const name of planFixtureNames()) assert.equal(problems(edgeOf(name)), [], name);
});

refusals('a public port listed twice', () => {
  if (!hasNix) return;
  const edge = base();
  edge.ports = [...edge.ports, { ...edge.ports[0]! }];
  const message = refusal(edge);
  assert.ok(message, 'render-edge.nix must fail');
  assert.match(
    message!,
    `public port ${edge.ports[0]!.publicPort}/tcp is listed 2 times (entries 1, ${edge.ports.length})`,
  );
  assert.match(message!, 'keep one of these entries');
  assert.is(problems(edge).length, 1);
});

refusals('a public TCP port that is the SSH port, a UDP port that is the WireGuard port', () => {
  if (!hasNix) return;
  const edge = base();
  edge.ports = [
    { protocol: 'tcp', publicPort: edge.ssh.port, localPort: 22, proxyProtocol: false },
    { protocol: 'udp', publicPort: edge.wireguard.listenPort, localPort: 51820, proxyProtocol: false },
    // The same numbers on the other protocol are fine.
    { protocol: 'udp', publicPort: edge.ssh.port, localPort: 22, proxyProtocol: false },
    { protocol: 'tcp', publicPort: edge.wireguard.listenPort, localPort: 51820, proxyProtocol: false },
  ];
  const found = problems(edge);
  assert.is(found.length, 2);
  assert.match(found[0]!, "is the edge's SSH port (services.innisfree.ssh.port = 22)");
  assert.match(found[0]!, '--edge-ssh-port');
  assert.match(found[1]!, "is the edge's WireGuard port (services.innisfree.wireguard.listenPort = 51820)");
  assert.match(found[1]!, '--wireguard-port');
});

refusals('PROXY protocol on UDP or with kernel DNAT; IPv6 DNAT without tunnel IPv6; no ports', () => {
  if (!hasNix) return;
  const udp = base();
  udp.ports = udp.ports.map((p) => (p.protocol === 'udp' ? { ...p, proxyProtocol: true } : p));
  assert.match(problems(udp).join('\n'), 'which exists for TCP only');
  const dnat = { ...base(), forwarding: 'nftables' as const };
  dnat.ports = dnat.ports.map((p) => (p.protocol === 'tcp' ? { ...p, proxyProtocol: true } : p));
  assert.match(problems(dnat).join('\n'), 'cannot add the header');
  const v6 = { ...base(), forwarding: 'nftables' as const, ipv6: true };
  assert.match(problems(v6).join('\n'), 'needs IPv6 tunnel addresses');
  assert.match(problems({ ...base(), ports: [] }).join('\n'), 'services.innisfree.ports is empty');
});

refusals.run();

// ---
const parity = suite('renderers: the Nix helpers agree with the CLI');

parity(
  'nginx is sized for the most ports the CLI accepts, whatever the ports (a unit that changes restarts nginx)',
  () => {
    if (!hasNix) return;
    const limits = nixEvalExpr<{ maxPublicPorts: number; listeners: number }>(`(import ./nix/lib).nginxLimits 16384`);
    assert.is(limits.maxPublicPorts, MAX_PUBLIC_PORTS);
    assert.is(limits.listeners, 2 * MAX_PUBLIC_PORTS, 'IPv4 and IPv6 listeners for every port');
  },
);

parity('port mappings parse as src/spec/ports.ts parses them', () => {
  if (!hasNix) return;
  const tokens = [
    '443/tcp',
    '80:8080',
    '19132/udp',
    '27015-27030/UDP',
    '8000-8003:9000-9003/tcp',
    ' 53/Udp ',
    '22:2222/tcp',
  ];
  const fromNix = nixEvalExpr<unknown[]>(
    `(import ./nix/lib).ports.parseList ${JSON.stringify(tokens).replace(/,/g, ' ')}`,
  );
  const fromTs = tokens.map((t) => {
    const { protocol, publicStart, publicEnd, localStart, localEnd } = parsePortToken(t);
    return { localEnd, localStart, protocol, publicEnd, publicStart };
  });
  assert.equal(fromNix, fromTs);
  assert.equal(nixEvalExpr(`(import ./nix/lib).ports.localRanges [ "443/tcp,80:8080" "27015-27030/udp" ]`), {
    tcp: [
      { from: 443, to: 443 },
      { from: 8080, to: 8080 },
    ],
    udp: [{ from: 27015, to: 27030 }],
  });
});

parity('interface names are the ones src/addressing.ts picks', () => {
  if (!hasNix) return;
  const names = ['web', 'dns', 'ten-chars1', 'eleven-char', 'averylongname-x', 'abcd--efghijk', 'a----bcdefghijkl'];
  const fromNix = nixEvalExpr<string[][]>(
    `map (n: [ ((import ./nix/lib).interfaces.home n) ((import ./nix/lib).interfaces.edge n) ]) ` +
      `${JSON.stringify(names).replace(/,/g, ' ')}`,
  );
  assert.equal(
    fromNix,
    names.map((n) => [`isf-${shortIdOf(n)}`, `ise-${shortIdOf(n)}`]),
  );
});

parity.run();
