// modules/edge.nix evaluated with nixpkgs' lib (lib.evalModules) and minimal declarations of the NixOS options it
// sets (test/nix/nixos-stubs.nix): `services.innisfree = lib.importJSON ./edge.json` must work for every plan
// fixture as-is, configure what the design promises, and refuse bad configs with the assertion messages.
// Needs NIXPKGS_LIB pointing at a nixpkgs (or nixpkgs.lib) checkout; without it the suite says it skipped.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EdgeConfig } from '../../src/spec/edge-config.js';
import { MAX_PUBLIC_PORTS } from '../../src/spec/ports.js';
import { planFixtureNames, planFixturesDir, readPlanFixture } from '../helpers/fixtures.js';
import { commandExists, hasNix, nixpkgsLib, repoRoot, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';

interface Evaluated {
  failedAssertions: string[];
  wireguard: {
    enable: boolean;
    useNetworkd: boolean;
    interfaces: Record<
      string,
      {
        ips: string[];
        listenPort: number;
        mtu: number;
        privateKey: string | null;
        privateKeyFile: string;
        generatePrivateKeyFile: boolean;
        peers: Array<{ publicKey: string; allowedIPs: string[]; endpoint: string | null }>;
      }
    >;
  };
  firewall: { enable: boolean; allowedTCPPorts: number[]; allowedUDPPorts: number[] };
  nftables: { enable: boolean; tables: Record<string, { family: string; content: string; enable: boolean }> };
  sysctl: Record<string, unknown>;
  openssh: {
    enable: boolean;
    ports: number[];
    openFirewall: boolean;
    PasswordAuthentication: boolean;
    KbdInteractiveAuthentication: boolean;
    PermitRootLogin: string;
    X11Forwarding: boolean;
  };
  rootKeys: string[];
  gc: { automatic: boolean; dates: string; options: string };
  nginx: {
    enable: boolean;
    enableReload: boolean;
    streamConfig: string;
    eventsConfig: string;
    appendConfig: string;
    limitNofile: number | null;
    unit: unknown;
    httpListeners: Array<{ name: string; addr: string; port: number }>;
  };
  configHashFile: string | null;
  status: { text: string } | null;
  repair: { text: string } | null;
  optionPaths: string[];
}

const lib = nixpkgsLib();
const ready = (): boolean => {
  if (!hasNix) return (skipped('edge module evaluation', 'nix-instantiate is not on PATH'), false);
  if (!lib.path) return (skipped('edge module evaluation', lib.reason), false);
  return true;
};

function evaluate(
  edgeJson: string,
  extra: unknown = {},
): { ok: true; value: Evaluated } | { ok: false; error: string } {
  const result = run(
    'nix-instantiate',
    [
      '--eval',
      '--strict',
      '--json',
      'test/nix/eval-edge-module.nix',
      '--arg',
      'nixpkgsLib',
      lib.path!,
      '--argstr',
      'edgeJson',
      edgeJson,
      '--argstr',
      'extraJson',
      JSON.stringify(extra),
    ],
    { cwd: repoRoot },
  );
  return result.status === 0
    ? { ok: true, value: JSON.parse(result.stdout) as Evaluated }
    : { ok: false, error: result.stderr };
}

function evaluateEdge(edge: unknown): ReturnType<typeof evaluate> {
  const dir = makeTempDir('innisfree-edge-module-');
  try {
    const file = join(dir.path, 'edge.json');
    writeFileSync(file, JSON.stringify(edge));
    return evaluate(file);
  } finally {
    dir.remove();
  }
}

/** writeShellApplication runs shellcheck on its text (after its own header) and fails the build on findings. */
function shellcheckAsWriteShellApplication(text: string): void {
  if (!commandExists('shellcheck'))
    return skipped('shellcheck of innisfree-edge-status', 'shellcheck is not installed');
  const dir = makeTempDir('innisfree-shellcheck-');
  try {
    const file = join(dir.path, 'innisfree-edge-status');
    writeFileSync(file, `#!/bin/bash\nset -o errexit\nset -o nounset\nset -o pipefail\n\n${text}`);
    const result = run('shellcheck', [file]);
    assert.is(result.status, 0, result.stdout);
  } finally {
    dir.remove();
  }
}

const must = (r: ReturnType<typeof evaluate>): Evaluated => {
  if (!r.ok) throw new Error(`evaluation failed:\n${r.error}`);
  return r.value;
};

// ---
const fixtures = suite('edge module: every plan fixture, imported as JSON');

fixtures('NIXPKGS_LIB', () => {
  ready();
});

for (const name of planFixtureNames()) {
  fixtures(`${name}: evaluates and configures WireGuard, forwarding, firewall, SSH and GC`, () => {
    if (!ready()) return;
    const edge = JSON.parse(readPlanFixture(name).edge!) as EdgeConfig;
    const rendered = JSON.parse(readFileSync(join(planFixturesDir, name, 'render.json'), 'utf8')) as {
      nginxStream: string;
      nftables: { family: string; content: string };
      firewall: { tcp: number[]; udp: number[] };
    };
    const c = must(evaluate(join(planFixturesDir, name, 'edge.json')));
    assert.equal(c.failedAssertions, []);

    const wg = c.wireguard.interfaces[edge.wireguard.interface]!;
    assert.ok(wg, 'the WireGuard interface is named as in the JSON');
    assert.equal(Object.keys(c.wireguard.interfaces), [edge.wireguard.interface]);
    assert.is(c.wireguard.useNetworkd, false);
    assert.equal(wg.ips, [edge.wireguard.address, ...(edge.wireguard.address6 ? [edge.wireguard.address6] : [])]);
    assert.is(wg.listenPort, edge.wireguard.listenPort);
    assert.is(wg.mtu, edge.wireguard.mtu);
    assert.is(wg.generatePrivateKeyFile, true, 'the edge makes its own key');
    assert.is(wg.privateKey, null, 'no key in the store');
    assert.match(wg.privateKeyFile, /^\/var\/lib\/innisfree\//);
    const peer = edge.wireguard.peer;
    assert.equal(wg.peers, [
      {
        publicKey: peer.publicKey,
        allowedIPs: [`${peer.address}/32`, ...(peer.address6 ? [`${peer.address6}/128`] : [])],
        endpoint: null,
        persistentKeepalive: null,
      } as unknown as (typeof wg.peers)[number],
    ]);

    assert.is(c.firewall.enable, true);
    assert.equal(c.firewall.allowedTCPPorts, rendered.firewall.tcp, 'exactly SSH and the public TCP ports');
    assert.equal(c.firewall.allowedUDPPorts, rendered.firewall.udp, 'exactly WireGuard and the public UDP ports');
    assert.is(c.openssh.openFirewall, false, 'no second way to open a port');

    if (edge.forwarding === 'nginx') {
      assert.is(c.nginx.enable, true);
      assert.is(c.nginx.enableReload, true, 'a config change reloads nginx');
      assert.is(c.nginx.streamConfig, rendered.nginxStream, 'the same text render-edge.nix prints');
      // Room for the most listeners the CLI accepts (MAX_PUBLIC_PORTS, IPv4 and IPv6), whatever the ports.
      const listeners = 2 * MAX_PUBLIC_PORTS;
      assert.is(c.nginx.eventsConfig, `worker_connections ${16384 + listeners};`);
      assert.match(c.nginx.appendConfig, 'worker_processes auto;');
      assert.match(c.nginx.appendConfig, `worker_rlimit_nofile ${c.nginx.limitNofile};`);
      assert.ok(c.nginx.limitNofile! > 2 * (16384 + listeners));
      assert.equal(c.nftables.tables, {});
      assert.is(c.sysctl['net.ipv4.conf.all.forwarding'], undefined, 'no forwarding with nginx');
    } else {
      assert.is(c.nginx.enable, false);
      assert.equal(c.nftables.tables.innisfree, { name: 'innisfree', enable: true, ...rendered.nftables } as never);
      assert.is(c.sysctl['net.ipv4.conf.all.forwarding'], true);
      assert.is(c.sysctl['net.ipv6.conf.all.forwarding'], edge.ipv6 && peer.address6 ? true : undefined);
    }
    assert.is(c.nftables.enable, true);

    assert.equal(
      {
        enable: c.openssh.enable,
        ports: c.openssh.ports,
        password: c.openssh.PasswordAuthentication,
        kbd: c.openssh.KbdInteractiveAuthentication,
        root: c.openssh.PermitRootLogin,
      },
      { enable: true, ports: [edge.ssh.port], password: false, kbd: false, root: 'prohibit-password' },
    );
    // The hardening comes from nix/edge-settings.json, which the local edge renders too.
    const hardening = (
      JSON.parse(readFileSync(join(repoRoot, 'nix', 'edge-settings.json'), 'utf8')) as {
        sshdHardening: Record<string, unknown>;
      }
    ).sshdHardening;
    for (const [keyword, value] of Object.entries(hardening)) {
      assert.equal(c.openssh[keyword as keyof typeof c.openssh], value, keyword);
    }
    assert.equal(c.rootKeys, edge.ssh.authorizedKeys);
    assert.equal(c.gc, { automatic: true, dates: 'weekly', options: '--delete-older-than 14d' });
    assert.is(c.configHashFile, null, 'no hash file unless configHash is set');

    assert.ok(c.status, 'innisfree-edge-status is installed');
    assert.match(c.status!.text, `export INNISFREE_EDGE_NAME=${edge.name}\n`);
    assert.match(c.status!.text, `export INNISFREE_EDGE_INTERFACE=${edge.wireguard.interface}\n`);
    assert.match(c.status!.text, `export INNISFREE_EDGE_FORWARDING=${edge.forwarding}\n`);
    assert.match(c.status!.text, 'export INNISFREE_EDGE_HASH_FILE=/etc/innisfree/config-hash\n');
    assert.not.match(c.status!.text, '#!/usr/bin/env bash', 'the shebang is dropped inside writeShellApplication');
    shellcheckAsWriteShellApplication(c.status!.text);

    // innisfree-edge-repair: what up's watch runs when the forwarder or WireGuard broke.
    assert.ok(c.repair, 'innisfree-edge-repair is installed');
    const forwarderUnit = edge.forwarding === 'nginx' ? 'nginx.service' : 'nftables.service';
    assert.match(c.repair!.text, `systemctl restart ${forwarderUnit}\n`);
    assert.match(c.repair!.text, `systemctl restart wireguard-${edge.wireguard.interface}.service\n`);
    assert.match(c.repair!.text, `systemctl restart 'wireguard-${edge.wireguard.interface}-peer-*' || true\n`);
    shellcheckAsWriteShellApplication(c.repair!.text);
  });
}

fixtures.run();

// ---
const sockets = suite(
  'edge module: every public port has exactly one listener (nginx stream and http, sshd, WireGuard)',
);

/** Every socket the evaluated edge would listen on, as "proto/port/family" with who listens. */
function listenersOf(c: Evaluated, edge: EdgeConfig): Array<{ key: string; by: string }> {
  const out: Array<{ key: string; by: string }> = [];
  const both = (proto: string, port: number, by: string) =>
    ['v4', 'v6'].forEach((f) => out.push({ key: `${proto}/${port}/${f}`, by }));
  if (c.nginx.enable) {
    for (const m of c.nginx.streamConfig.matchAll(/^\s*listen (\[::\]:)?(\d+)( udp)?/gm)) {
      out.push({ key: `${m[3] ? 'udp' : 'tcp'}/${m[2]}/${m[1] ? 'v6' : 'v4'}`, by: 'nginx stream' });
    }
    for (const l of c.nginx.httpListeners)
      out.push({
        key: `tcp/${l.port}/${l.addr.startsWith('[') ? 'v6' : 'v4'}`,
        by: `nginx http virtual host ${l.name}`,
      });
  }
  if (edge.forwarding === 'nftables') {
    for (const p of edge.ports) {
      out.push({ key: `${p.protocol}/${p.publicPort}/v4`, by: 'nftables DNAT' });
      if (edge.ipv6) out.push({ key: `${p.protocol}/${p.publicPort}/v6`, by: 'nftables DNAT' });
    }
  }
  for (const port of c.openssh.ports) both('tcp', port, 'sshd');
  for (const wg of Object.values(c.wireguard.interfaces)) both('udp', wg.listenPort, 'WireGuard');
  return out;
}

for (const name of planFixtureNames()) {
  sockets(name, () => {
    if (!ready()) return;
    const edge = JSON.parse(readPlanFixture(name).edge!) as EdgeConfig;
    const c = must(evaluate(join(planFixturesDir, name, 'edge.json')));
    const all = listenersOf(c, edge);
    const families = edge.ipv6 ? ['v4', 'v6'] : ['v4'];
    for (const p of edge.ports) {
      for (const f of families) {
        const key = `${p.protocol}/${p.publicPort}/${f}`;
        const by = all.filter((l) => l.key === key).map((l) => l.by);
        assert.equal(by.length, 1, `public ${key} must have exactly one listener, has: ${by.join(', ') || 'none'}`);
      }
    }
    const counts = new Map<string, string[]>();
    for (const l of all) counts.set(l.key, [...(counts.get(l.key) ?? []), l.by]);
    for (const [key, by] of counts) assert.is(by.length, 1, `${key} is bound twice: ${by.join(', ')}`);
  });
}

sockets.run();

// ---
const unit = suite('edge module: a port change reloads nginx (nginx.service unchanged)');

unit('nginx.service is identical for 3 ports and for 4,096 ports with IPv6', () => {
  if (!ready()) return;
  const edge = JSON.parse(readPlanFixture('web-basic').edge!) as EdgeConfig;
  const few = must(evaluateEdge(edge));
  const many = must(
    evaluateEdge({
      ...edge,
      ipv6: true,
      ports: Array.from({ length: 4096 }, (_, i) => ({
        protocol: 'tcp',
        publicPort: 30000 + i,
        localPort: 30000 + i,
        proxyProtocol: false,
      })),
    }),
  );
  assert.ok(few.nginx.unit, 'the module sets nginx.service options');
  assert.equal(
    many.nginx.unit,
    few.nginx.unit,
    'switch-to-configuration would restart nginx, dropping every connection',
  );
  assert.is(many.nginx.eventsConfig, few.nginx.eventsConfig);
  assert.is(many.nginx.appendConfig, few.nginx.appendConfig);
});

unit.run();

// ---
const options = suite('edge module: options, configHash and refusals');

options('the options are exactly the JSON Schema fields plus the documented extras', () => {
  if (!ready()) return;
  const schema = JSON.parse(readFileSync(join(repoRoot, 'nix', 'edge-config.schema.json'), 'utf8')) as Schema;
  interface Schema {
    type?: string;
    properties?: Record<string, Schema>;
    items?: Schema;
  }
  const leaves = (node: Schema, prefix: string): string[] =>
    Object.entries(node.properties ?? {}).flatMap(([key, child]) => {
      const path = prefix ? `${prefix}.${key}` : key;
      if (child.type === 'object') return leaves(child, path);
      if (child.type === 'array' && child.items?.type === 'object') return [path, ...leaves(child.items, `${path}.*`)];
      return [path];
    });
  const extras = ['configHash', 'wireguard.privateKeyFile', 'nginx.workerConnections'];
  const c = must(evaluate(join(planFixturesDir, 'web-basic', 'edge.json')));
  assert.equal([...c.optionPaths].sort(), [...leaves(schema, ''), ...extras].sort());
});

options('configHash lands in /etc/innisfree/config-hash, which the status command reads', () => {
  if (!ready()) return;
  const hash = '5d41402abc4b2a76b9719d911017c592aaf5c0e1d2b4a6978877665544332211';
  const c = must(evaluate(join(planFixturesDir, 'web-basic', 'edge.json'), { configHash: hash }));
  assert.is(c.configHashFile, `${hash}\n`);
  const bad = evaluate(join(planFixturesDir, 'web-basic', 'edge.json'), { configHash: 'not-a-hash' });
  assert.not.ok(bad.ok, 'a malformed hash is a type error');
});

options('a duplicate public port and SSH/WireGuard collisions fail the assertions with what, why and how', () => {
  if (!ready()) return;
  const edge = JSON.parse(readPlanFixture('web-basic').edge!) as EdgeConfig;
  edge.ports = [
    ...edge.ports,
    { ...edge.ports[0]! },
    { protocol: 'tcp', publicPort: edge.ssh.port, localPort: 22, proxyProtocol: false },
    { protocol: 'udp', publicPort: edge.wireguard.listenPort, localPort: 1, proxyProtocol: false },
  ];
  const c = must(evaluateEdge(edge));
  assert.is(c.failedAssertions.length, 3);
  assert.match(c.failedAssertions[0]!, 'is listed 2 times');
  assert.match(c.failedAssertions[1]!, "is the edge's SSH port");
  assert.match(c.failedAssertions[2]!, "is the edge's WireGuard port");
});

options('no authorized key is refused; values that could inject text into nginx or nft are type errors', () => {
  if (!ready()) return;
  const edge = JSON.parse(readPlanFixture('web-basic').edge!) as EdgeConfig;
  const noKeys = must(evaluateEdge({ ...edge, ssh: { ...edge.ssh, authorizedKeys: [] } }));
  assert.match(noKeys.failedAssertions.join('\n'), 'services.innisfree.ssh.authorizedKeys is empty');
  const injected = [
    {
      ...edge,
      wireguard: { ...edge.wireguard, peer: { ...edge.wireguard.peer, address: '10.0.0.2; include /etc/passwd' } },
    },
    { ...edge, wireguard: { ...edge.wireguard, interface: 'wg0" accept' } },
    { ...edge, ports: [{ ...edge.ports[0]!, publicPort: 70000 }] },
    { ...edge, ports: [{ ...edge.ports[0]!, protocol: 'sctp' }] },
    { ...edge, forwarding: 'haproxy' },
  ];
  for (const bad of injected) {
    const result = evaluateEdge(bad);
    assert.not.ok(result.ok, `must be refused: ${JSON.stringify(bad).slice(0, 200)}`);
    assert.match((result as { error: string }).error, /is not of type|value is not/);
  }
});

options('a hand-written config gets the defaults: localPort = publicPort, nginx, port 22, 51820', () => {
  if (!ready()) return;
  const c = must(
    evaluateEdge({
      enable: true,
      name: 'hand',
      ports: [{ publicPort: 443 }, { protocol: 'udp', publicPort: 3478 }],
      wireguard: {
        address: '10.9.0.1/30',
        peer: { publicKey: 'P6RTFeT7ETiDVjl2rRuaLNoUmVvdiWx6s/WuFjuKcVE=', address: '10.9.0.2' },
      },
      ssh: {
        authorizedKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGAPLRiHD1P3ZHYJOmoeasVYrbWvGdFU14lI/0DWd9p2 hand'],
      },
    }),
  );
  assert.equal(c.failedAssertions, []);
  assert.match(c.nginx.streamConfig, 'listen 443;\n    proxy_pass 10.9.0.2:443;');
  assert.match(c.nginx.streamConfig, 'listen 3478 udp reuseport;\n    proxy_pass 10.9.0.2:3478;');
  assert.equal(c.firewall.allowedTCPPorts, [22, 443]);
  assert.equal(c.firewall.allowedUDPPorts, [3478, 51820]);
  assert.ok(c.wireguard.interfaces['wg-innisfree']);
});

options.run();
