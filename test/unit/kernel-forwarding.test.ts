// The home kernel forwarding table as text, and what kernelForwardingUp asks of the system (a fake exec): one
// atomic nft transaction of this tunnel's table only, sysctls on the tunnel interface only and put back on down,
// a clear refusal when the way to another host does not forward.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Exec, ExecResult } from '../../src/lib/context.js';
import { DataPlaneError, EnvironmentError } from '../../src/lib/errors.js';
import {
  type KernelForwardingSpec,
  kernelForwardingUp,
  kernelTableName,
  parseNftCounters,
  renderKernelRuleset,
} from '../../src/home/kernel-forwarding.js';
import type { HomeForward } from '../../src/spec/home-config.js';

const HOME = '10.50.0.2';

function forward(protocol: 'tcp' | 'udp', port: number, targetHost = '127.0.0.1'): HomeForward {
  return { protocol, listenAddress: HOME, listenPort: port, targetHost, targetPort: port };
}

function specOf(forwards: HomeForward[], masquerade = false): KernelForwardingSpec {
  return { interface: 'isf-web', address: HOME, mark: 20007, forwards, masquerade };
}

const R = suite('kernel forwarding: the ruleset');

R("one transaction that replaces only this tunnel's table", () => {
  const text = renderKernelRuleset(specOf([forward('tcp', 8080)]), new Map([['127.0.0.1', 'loopback']]));
  const lines = text.split('\n');
  assert.equal(lines.slice(0, 3), [
    'table inet innisfree-home-isf-web',
    'delete table inet innisfree-home-isf-web',
    'table inet innisfree-home-isf-web {',
  ]);
  const named = [...text.matchAll(/\btable (\w+) (\S+)/g)].map((m) => `${m[1]} ${m[2]}`);
  assert.equal(named, Array(3).fill('inet innisfree-home-isf-web'), 'no other table is named');
  assert.is(kernelTableName('isf-web'), 'innisfree-home-isf-web');
});

R('DNAT of the mapped ports arriving on the tunnel, marks for the replies, counters per port', () => {
  const text = renderKernelRuleset(
    specOf([forward('tcp', 8080), forward('udp', 27015), forward('udp', 27016)]),
    new Map([['127.0.0.1', 'loopback']]),
  );
  assert.match(
    text,
    /map tcp-dnat \{ type inet_service : ipv4_addr \. inet_service; elements = \{ 8080 : 127\.0\.0\.1 \. 8080 \} \}/,
  );
  assert.match(text, /elements = \{ 27015 : 127\.0\.0\.1 \. 27015, 27016 : 127\.0\.0\.1 \. 27016 \}/);
  assert.match(
    text,
    /iifname "isf-web" ip daddr 10\.50\.0\.2 counter name tcp dport map @tcp-new dnat ip to tcp dport map @tcp-dnat/,
  );
  assert.match(text, /iifname "isf-web" ct state new ct mark set 20007/);
  assert.match(text, /ct direction reply ct mark 20007 meta mark set 20007/);
  assert.match(text, /type route hook output priority mangle; policy accept;\n\s+ct mark 20007 meta mark set 20007/);
  for (const name of ['tcp-8080-new', 'tcp-8080-in', 'tcp-8080-out', 'udp-27015-in', 'udp-27016-out'])
    assert.match(text, new RegExp(`counter ${name} \\{ \\}`));
  assert.not.match(text, /masquerade/);
});

R('UDP to this host: replies of a 0.0.0.0-bound service get the destination address back as their source', () => {
  const text = renderKernelRuleset(
    specOf([forward('udp', 27015), forward('udp', 27016), forward('udp', 5000, '192.168.1.20')]),
    new Map([
      ['127.0.0.1', 'loopback'],
      ['192.168.1.20', 'remote'],
    ]),
  );
  assert.match(text, /udp dport \{ 27015-27016 \} update @udp-peers \{ ip saddr \. udp sport \. udp dport \}/);
  assert.match(
    text,
    new RegExp(
      /udp sport \{ 27015-27016 \} ip daddr \. udp dport \. udp sport @udp-peers ip saddr != /.source +
        /127\.0\.0\.1 ip saddr set 127\.0\.0\.1/.source,
    ),
  );
  assert.not.match(text, /5000 \} update/, 'another host picks its own source');
});

R(
  "IPv6 tunnel: IPv6 to this host keeps this host's tunnel address and takes the target port; no IPv6 to another host",
  () => {
    const spec = {
      ...specOf([forward('tcp', 8080), forward('udp', 5353), forward('tcp', 443, '192.168.1.20')]),
      address6: 'fd49:6e6e:6973:7::2',
    };
    const text = renderKernelRuleset(
      spec,
      new Map([
        ['127.0.0.1', 'loopback'],
        ['192.168.1.20', 'remote'],
      ]),
    );
    assert.match(
      text,
      new RegExp(
        /map tcp-dnat6 \{ type inet_service : ipv6_addr \. inet_service; elements = \{ 8080 : /.source +
          /fd49:6e6e:6973:7::2 \. 8080 \} \}/.source,
      ),
    );
    assert.match(
      text,
      new RegExp(
        /iifname "isf-web" ip6 daddr fd49:6e6e:6973:7::2 udp dport \{ 5353 \} counter name udp /.source +
          /dport map @udp-new dnat ip6 to udp dport map @udp-dnat6/.source,
      ),
    );
    assert.match(text, /update @udp-peers6 \{ ip6 saddr \. udp sport \. udp dport \}/);
    assert.match(
      text,
      new RegExp(
        /ip6 daddr \. udp dport \. udp sport @udp-peers6 ip6 saddr != fd49:6e6e:6973:7::2 ip6 /.source +
          /saddr set fd49:6e6e:6973:7::2/.source,
      ),
    );
    assert.not.match(text, /443 : fd49/, 'an IPv4 host elsewhere cannot take IPv6');
    assert.not.match(
      renderKernelRuleset(specOf([forward('tcp', 8080)]), new Map([['127.0.0.1', 'loopback']])),
      /ip6/,
      'no IPv6 rules without an IPv6 tunnel address',
    );
  },
);

R('no UDP to this host: no peer set, no source rewrite', () => {
  const text = renderKernelRuleset(
    specOf([forward('tcp', 443, '192.168.1.20')]),
    new Map([['192.168.1.20', 'remote']]),
  );
  assert.not.match(text, /udp-peers|output-source/);
});

R("masquerade: SNAT of this tunnel's connections that leave by another interface", () => {
  const text = renderKernelRuleset(
    specOf([forward('tcp', 443, '192.168.1.20')], true),
    new Map([['192.168.1.20', 'remote']]),
  );
  assert.match(
    text,
    new RegExp(
      /type nat hook postrouting priority srcnat; policy accept;\n\s+ct direction original ct mark /.source +
        /20007 oifname != "isf-web" masquerade/.source,
    ),
  );
});

R.run();

// ---
interface FakeSystem {
  calls: string[];
  sysctl: Map<string, string>;
  routes: Record<string, { type?: string; dev?: string }>;
  nftFails?: boolean;
  input?: string;
}

function fakeExec(system: FakeSystem): Exec {
  const ok = (stdout = ''): ExecResult => ({ stdout, stderr: '', exitCode: 0 });
  return async (file, args, options = {}) => {
    const line = `${file} ${args.join(' ')}`;
    system.calls.push(line);
    let result: ExecResult = ok();
    if (file === 'sysctl' && args[0] === '-n') {
      const value = system.sysctl.get(args[1]!);
      result = value === undefined ? { stdout: '', stderr: 'no such key', exitCode: 255 } : ok(`${value}\n`);
    } else if (file === 'sysctl' && args.includes('-w')) {
      const [key, value] = args[args.length - 1]!.split('=');
      system.sysctl.set(key!, value!);
    } else if (file === 'ip' && args.includes('get')) {
      const target = args[args.length - 1]!;
      result = ok(JSON.stringify([system.routes[target] ?? { dev: 'eth0' }]));
    } else if (file === 'nft' && args[0] === '-f') {
      system.input = options.input;
      if (system.nftFails)
        result = { stdout: '', stderr: 'Error: Could not process rule: Operation not permitted', exitCode: 1 };
    }
    if (options.reject !== false && result.exitCode !== 0)
      throw new Error(`${line} exited with ${result.exitCode}: ${result.stderr}`);
    return result;
  };
}

function system(entries: Record<string, string>, routes: FakeSystem['routes'] = {}): FakeSystem {
  return { calls: [], sysctl: new Map(Object.entries(entries)), routes };
}

const U = suite('kernel forwarding: up and down');

U('a loopback destination sets route_localnet on the tunnel only, and down puts it back', async () => {
  const sys = system({ 'net.ipv4.conf.isf-web.route_localnet': '0', 'net.ipv4.conf.isf-web.forwarding': '0' });
  const kernel = await kernelForwardingUp(fakeExec(sys), specOf([forward('tcp', 8080)]));
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.route_localnet'), '1');
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '0', 'no forwarding for a local destination');
  assert.ok(sys.input?.startsWith('table inet innisfree-home-isf-web\ndelete table'), 'one nft -f transaction');
  assert.not.ok(
    sys.calls.some((c) => /conf\.(all|default|eth0)\./.test(c)),
    'no other interface is touched',
  );
  await kernel.down();
  assert.ok(sys.calls.includes('nft delete table inet innisfree-home-isf-web'));
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.route_localnet'), '0', 'restored');
});

U('another host: forwarding on the tunnel, and a clear refusal when the way there does not forward', async () => {
  const off = system(
    { 'net.ipv4.conf.isf-web.forwarding': '0', 'net.ipv4.conf.eth0.forwarding': '0' },
    { '192.168.1.20': { dev: 'eth0' } },
  );
  const error = await kernelForwardingUp(fakeExec(off), specOf([forward('tcp', 443, '192.168.1.20')])).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(error, EnvironmentError);
  assert.match(
    (error as EnvironmentError).message,
    /^kernel forwarding to 192\.168\.1\.20 needs IPv4 forwarding on eth0, which is off$/,
  );
  assert.match((error as EnvironmentError).hint ?? '', /--home-forwarding proxy/);
  assert.is(off.input, undefined, 'nothing was loaded');
  assert.is(off.sysctl.get('net.ipv4.conf.eth0.forwarding'), '0', 'the shared interface is left alone');

  const on = system(
    {
      'net.ipv4.conf.isf-web.forwarding': '0',
      'net.ipv4.conf.eth0.forwarding': '1',
      'net.ipv4.conf.isf-web.route_localnet': '0',
    },
    { '192.168.1.20': { dev: 'eth0' } },
  );
  const kernel = await kernelForwardingUp(fakeExec(on), specOf([forward('tcp', 443, '192.168.1.20')]));
  assert.is(on.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '1');
  assert.is(
    on.sysctl.get('net.ipv4.conf.isf-web.route_localnet'),
    '0',
    'no route_localnet without a loopback destination',
  );
  await kernel.down();
  assert.is(on.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '0');
});

U(
  'update (a reload) replaces the table in one transaction, sets what a new destination needs, and down restores all',
  async () => {
    const sys = system(
      {
        'net.ipv4.conf.isf-web.route_localnet': '0',
        'net.ipv4.conf.isf-web.forwarding': '0',
        'net.ipv4.conf.eth0.forwarding': '1',
      },
      { '192.168.1.20': { dev: 'eth0' } },
    );
    const kernel = await kernelForwardingUp(fakeExec(sys), specOf([forward('tcp', 8080)]));
    const before = sys.calls.length;
    await kernel.update([forward('tcp', 8080), forward('tcp', 443, '192.168.1.20')], false);
    const during = sys.calls.slice(before);
    assert.not.ok(
      during.some((c) => c.startsWith('nft delete')),
      `no separate delete: ${during.join(' | ')}`,
    );
    assert.ok(sys.input?.startsWith('table inet innisfree-home-isf-web\ndelete table'), 'one nft -f transaction');
    assert.match(sys.input ?? '', /443 : 192\.168\.1\.20 \. 443/);
    assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '1', 'the new remote destination gets forwarding');
    assert.equal(
      (await kernel.counters()).map((c) => c.listenPort),
      [8080, 443],
    );
    await kernel.down();
    assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '0', 'restored');
    assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.route_localnet'), '0', 'restored');
  },
);

U('a reload still running when the tunnel stops cannot load the table again after down removed it', async () => {
  // Seen in the reload benchmark: SIGTERM during a reload's late step left innisfree-home-* behind.
  const sys = system({ 'net.ipv4.conf.isf-web.route_localnet': '0', 'net.ipv4.conf.isf-web.forwarding': '0' });
  const exec = fakeExec(sys);
  let tables = 0;
  const counting: Exec = async (file, args, options) => {
    // The route look-up of an update takes a while; down comes in meanwhile.
    if (file === 'ip' && args.includes('get')) await new Promise((r) => setTimeout(r, 20));
    const result = await exec(file, args, options);
    if (file === 'nft' && args[0] === '-f') tables = 1;
    if (file === 'nft' && args[0] === 'delete') tables = 0;
    return result;
  };
  const kernel = await kernelForwardingUp(counting, specOf([forward('tcp', 8080)]));
  const update = kernel.update([forward('tcp', 8080), forward('tcp', 8081)], false).catch((e: unknown) => e);
  await kernel.down();
  await update;
  assert.is(tables, 0, 'no table after down');
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.route_localnet'), '0', 'restored');
  await kernel.update([forward('tcp', 8082)], false).catch(() => {});
  assert.is(tables, 0, 'an update after down does nothing');
});

U('an address of this host is served locally', async () => {
  const sys = system(
    { 'net.ipv4.conf.isf-web.forwarding': '0', 'net.ipv4.conf.isf-web.route_localnet': '0' },
    { '192.168.1.5': { type: 'local', dev: 'lo' } },
  );
  await kernelForwardingUp(fakeExec(sys), specOf([forward('udp', 53, '192.168.1.5')]));
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.forwarding'), '0');
  assert.match(sys.input ?? '', /ip saddr set 192\.168\.1\.5/);
});

U('a refused ruleset undoes the sysctls and says what to do', async () => {
  const sys = { ...system({ 'net.ipv4.conf.isf-web.route_localnet': '0' }), nftFails: true };
  const error = await kernelForwardingUp(fakeExec(sys), specOf([forward('tcp', 8080)])).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(error, DataPlaneError);
  assert.match(
    (error as DataPlaneError).message,
    /^setting up kernel forwarding on isf-web failed: .*Operation not permitted/,
  );
  assert.match((error as DataPlaneError).hint ?? '', /--home-forwarding proxy/);
  assert.is(sys.sysctl.get('net.ipv4.conf.isf-web.route_localnet'), '0');
});

U('host names are refused before anything changes', async () => {
  const sys = system({});
  const error = await kernelForwardingUp(fakeExec(sys), specOf([forward('tcp', 8080, 'nas.lan')])).catch(
    (e: unknown) => e,
  );
  assert.instance(error, DataPlaneError);
  assert.equal(sys.calls, []);
});

U('nft counters by name', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { counter: { family: 'inet', name: 'tcp-8080-new', table: 't', handle: 6, packets: 2, bytes: 120 } },
      { counter: { family: 'inet', name: 'tcp-8080-in', table: 't', handle: 7, packets: 9, bytes: 900 } },
    ],
  });
  const counters = parseNftCounters(json);
  assert.equal(counters.get('tcp-8080-new'), { packets: 2, bytes: 120 });
  assert.equal(counters.get('tcp-8080-in'), { packets: 9, bytes: 900 });
  assert.is(parseNftCounters('not json').size, 0);
});

U.run();
