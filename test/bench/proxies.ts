// The forwarders under comparison, each started as a user would start it: socat (one process per connection or UDP
// client, default 8 KiB buffer), nginx stream (one worker, as one Node process is one event loop) and the built
// `innisfree proxy`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { cliPath } from '../helpers/cli.js';
import type { Namespace, Proc, Testbed } from '../helpers/netns.js';

export type Protocol = 'tcp' | 'udp';

export interface Mapping {
  listen: string;
  port: number;
  target: string;
  targetPort: number;
  protocols: Protocol[];
}

export interface Proxy {
  name: string;
  /** The process to measure memory of (nginx: the master; its worker is found through it). */
  procs: Proc[];
}

async function waitListening(ns: Namespace, mapping: Mapping): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = await ns.run('ss', ['-Hlntu']);
    const wanted = mapping.protocols.every((p) =>
      out.stdout.split('\n').some((line) => line.startsWith(p) && line.includes(`${mapping.listen}:${mapping.port} `)),
    );
    if (wanted) return;
    await delay(50);
  }
  throw new Error(`nothing listens on ${mapping.listen}:${mapping.port}`);
}

export async function startSocat(bed: Testbed, ns: Namespace, mapping: Mapping): Promise<Proxy> {
  const procs = mapping.protocols.map((protocol) => {
    const kind = protocol.toUpperCase();
    return bed.spawn(ns, 'socat', [
      // socat's default listen backlog is 5, which turns a burst of connections into SYN retries of seconds.
      `${kind}-LISTEN:${mapping.port},bind=${mapping.listen},fork,reuseaddr` +
        `${protocol === 'tcp' ? ',backlog=1024' : ''}`,
      `${kind}:${mapping.target}:${mapping.targetPort}`,
    ]);
  });
  await waitListening(ns, mapping);
  return { name: 'socat', procs };
}

export async function startNginx(bed: Testbed, ns: Namespace, mapping: Mapping): Promise<Proxy> {
  const dir = bed.tempDir();
  const servers = mapping.protocols
    .map(
      (protocol) =>
        `  server { listen ${mapping.listen}:${mapping.port}${protocol === 'udp' ? ' udp' : ''}; proxy_pass ` +
        `${mapping.target}:${mapping.targetPort}; }`,
    )
    .join('\n');
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'worker_processes 1;',
      'daemon off;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 8192; }',
      'stream {',
      servers,
      '}',
      '',
    ].join('\n'),
  );
  const proc = bed.spawn(ns, 'nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')]);
  await waitListening(ns, mapping);
  return { name: 'nginx', procs: [proc] };
}

export async function startInnisfree(bed: Testbed, ns: Namespace, mapping: Mapping): Promise<Proxy> {
  const ports = mapping.protocols.map((p) => `${mapping.port}:${mapping.targetPort}/${p}`).join(',');
  const proc = bed.spawn(
    ns,
    process.execPath,
    [cliPath, 'proxy', '--listen', mapping.listen, '--ports', ports, '--destination', mapping.target],
    {
      env: { INNISFREE_STATE_DIR: bed.tempDir() },
    },
  );
  await proc.waitForOutput(/proxy running/);
  return { name: 'innisfree', procs: [proc] };
}
