// The rendered text is loaded by real tools, not only compared with goldens: Debian's nginx (with the stream module
// as a dynamic module) checks every fixture's stream block with `nginx -t`, and nft checks every nftables table
// with `nft -c` inside a throwaway network namespace. The local provider runs exactly this text, and NixOS builds
// of the edge run the same checks with their own nginx and nft.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EdgeConfig } from '../../src/spec/edge-config.js';
import { planFixtureNames, readPlanFixture } from '../helpers/fixtures.js';
import { commandExists, hasNix, nixEvalExpr, renderBoth, run, skipped } from '../helpers/nix.js';
import { makeTempDir } from '../helpers/tmp.js';
import { nginxConfText } from '../../src/providers/local/rendered-edge.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const isRoot = process.getuid?.() === 0;

/** The main-context and events text modules/edge.nix gives NixOS' nginx, at the option's default. */
function nginxMain(): { eventsConfig: string; appendConfig: string } {
  return nixEvalExpr(
    `let l = import ./nix/lib; in builtins.removeAttrs (l.nginxMain l.defaultWorkerConnections) [ "limits" ]`,
  );
}

/** Every fixture, plus one edge with 2000 ports, plus the most the CLI accepts (4,096 ports on IPv4 and IPv6). */
function cases(): Array<{ label: string; edge: EdgeConfig }> {
  const list: Array<{ label: string; edge: EdgeConfig }> = [];
  for (const name of planFixtureNames()) {
    const edge = JSON.parse(readPlanFixture(name).edge!) as EdgeConfig;
    list.push({ label: name, edge });
  }
  const big = JSON.parse(readPlanFixture('nftables-ipv6').edge!) as EdgeConfig;
  big.ports = Array.from({ length: 2000 }, (_, i) => ({
    protocol: i % 2 === 0 ? 'tcp' : 'udp',
    publicPort: 10000 + i,
    localPort: 20000 + i,
    proxyProtocol: false,
  }));
  list.push({ label: '2000 ports with IPv6', edge: big });
  const most = JSON.parse(readPlanFixture('nftables-ipv6').edge!) as EdgeConfig;
  most.forwarding = 'nginx';
  most.ports = Array.from({ length: 4096 }, (_, i) => ({
    protocol: 'tcp',
    publicPort: 30000 + i,
    localPort: 30000 + i,
    proxyProtocol: false,
  }));
  list.push({ label: '4096 ports with IPv6 (MAX_PUBLIC_PORTS)', edge: most });
  return list;
}

// ---
const nginx = suite('render validity: nginx -t accepts every stream block');

const nginxReady = (): boolean => {
  if (!hasNix) return (skipped('nginx -t of rendered stream blocks', 'nix-instantiate is not on PATH'), false);
  if (!commandExists('nginx') || !existsSync(STREAM_MODULE)) {
    skipped(
      'nginx -t of rendered stream blocks',
      `nginx or its stream module (${STREAM_MODULE}, package libnginx-mod-stream) is not installed`,
    );
    return false;
  }
  return true;
};

for (const { label, edge } of cases()) {
  nginx(`${label}`, () => {
    if (!nginxReady()) return;
    const dir = makeTempDir('innisfree-nginx-');
    try {
      const conf = join(dir.path, 'nginx.conf');
      // The nginx.conf the local edge writes: the Nix-rendered main context, events and stream text (sized as
      // modules/edge.nix sizes it: listening sockets count against worker_connections).
      const paths = { pid: join(dir.path, 'nginx.pid'), errorLog: join(dir.path, 'error.log') };
      writeFileSync(
        conf,
        nginxConfText({ nginxStream: renderBoth(edge).nginxStream, nginxMain: nginxMain() }, paths, true),
      );
      const result = run('nginx', ['-t', '-q', '-c', conf, '-p', dir.path, '-e', join(dir.path, 'error.log')]);
      assert.is(result.status, 0, `nginx -t rejected the ${label} stream block:\n${result.stderr}`);
    } finally {
      dir.remove();
    }
  });
}

nginx.run();

// ---
const nft = suite('render validity: nft -c accepts every table (in a throwaway namespace)');

const nftReady = (): boolean => {
  if (!hasNix) return (skipped('nft -c of rendered tables', 'nix-instantiate is not on PATH'), false);
  if (!commandExists('nft') || !commandExists('ip')) {
    skipped('nft -c of rendered tables', 'nft or ip (packages nftables, iproute2) is not installed');
    return false;
  }
  if (!isRoot) {
    skipped('nft -c of rendered tables', 'needs root to create a network namespace');
    return false;
  }
  return true;
};

for (const { label, edge } of cases()) {
  nft(`${label}`, () => {
    if (!nftReady()) return;
    const kernelEdge: EdgeConfig = {
      ...edge,
      forwarding: 'nftables',
      ports: edge.ports.map((p) => ({ ...p, proxyProtocol: false })),
    };
    const namespace = `innisfree-nft-${randomBytes(4).toString('hex')}`;
    const dir = makeTempDir('innisfree-nft-');
    try {
      const file = join(dir.path, 'table.nft');
      writeFileSync(file, `table inet innisfree {\n${renderBoth(kernelEdge).nftables}}\n`);
      const add = run('ip', ['netns', 'add', namespace]);
      assert.is(add.status, 0, `ip netns add: ${add.stderr}`);
      const check = run('ip', ['netns', 'exec', namespace, 'nft', '-c', '-f', file]);
      assert.is(check.status, 0, `nft -c rejected the ${label} table:\n${check.stderr}`);
    } finally {
      run('ip', ['netns', 'delete', namespace]);
      dir.remove();
    }
    assert.not.ok(run('ip', ['netns', 'list']).stdout.includes(namespace), 'the namespace was removed');
  });
}

nft.run();
