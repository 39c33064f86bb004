// Reload under load, end to end on the local provider (as root):
//   node --import tsx test/bench/reload.ts
// Holds BENCH_RELOAD_TCP (100) TCP connections streaming pings and BENCH_RELOAD_UDP (20) UDP sessions through the
// tunnel from the internet client, runs BENCH_RELOADS (10) reloads that add and remove another port, and counts
// the held connections that dropped and the UDP sessions that lost replies for over 2 s. Then, 5 times, adds a
// port, sends SIGHUP and measures the time until the new port answers from the client (median reported).
// Prints one JSON summary on stdout; progress on stderr.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalProvider } from '../../src/providers/local/local-provider.js';
import { runCli } from '../helpers/cli.js';
import { localProviderUnavailable, randomTunnelName } from '../helpers/local-edge.js';
import { makeTempDir } from '../helpers/tmp.js';
import { startUp } from '../helpers/up-process.js';

const count = (name: string, fallback: number) => Number(process.env[name] || fallback);
const TCP = count('BENCH_RELOAD_TCP', 100);
const UDP = count('BENCH_RELOAD_UDP', 20);
const RELOADS = count('BENCH_RELOADS', 10);
const log = (message: string) => process.stderr.write(`${message}\n`);

/** Runs in the client namespace: holds the connections, pings every 200 ms, answers "report" on stdin. */
const holder = (ipv4: string, tcpPort: number, udpPort: number) => `
const net=require('net'),dgram=require('dgram');let dropped=0,tcpOpen=0;const udp=[];
for(let i=0;i<${TCP};i++){const s=net.connect(${tcpPort},'${ipv4}');s.on('connect',()=>{tcpOpen++;s.write('E')});
 s.on('data',()=>{});s.on('close',()=>{dropped++});s.on('error',()=>{});setInterval(()=>s.write('p'),200).unref();}
for(let i=0;i<${UDP};i++){const u=dgram.createSocket('udp4');const st={last:Date.now(),worst:0};udp.push(st);
 u.on('message',()=>{const now=Date.now();st.worst=Math.max(st.worst,now-st.last);st.last=now});
 setInterval(()=>u.send('p',${udpPort},'${ipv4}'),200);}
process.stdin.on('data',()=>{const now=Date.now();for(const st of udp)st.worst=Math.max(st.worst,now-st.last);
 console.log(JSON.stringify({tcpOpen,dropped,udpLost:udp.filter(st=>st.worst>2000).length}))});`;

async function main(): Promise<void> {
  const unavailable = localProviderUnavailable();
  if (unavailable) {
    console.log(`SKIPPED: ${unavailable}`);
    return;
  }
  const dir = makeTempDir('innisfree-bench-reload-');
  const env = {
    INNISFREE_STATE_DIR: join(dir.path, 'state'),
    INNISFREE_LOCAL_DIR: join(dir.path, 'local'),
    XDG_CONFIG_HOME: join(dir.path, 'config'),
  };
  const name = randomTunnelName();
  const provider = new LocalProvider({ env, runtimeDir: env.INNISFREE_LOCAL_DIR });
  const echo = createServer((socket) => socket.on('data', () => socket.write('.')));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const udpEcho = createSocket('udp4');
  udpEcho.on('message', (message, from) => udpEcho.send(message, from.port, from.address));
  await new Promise<void>((resolve) => udpEcho.bind(0, '127.0.0.1', resolve));
  const http = createHttpServer((_, res) => res.end('ok\n'));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (server: { address(): unknown }) => (server.address() as AddressInfo).port;
  const base = [`7000:${port(echo)}/tcp`, `7001:${port(udpEcho)}/udp`];
  const file = join(dir.path, 'tunnel.json');
  const writePorts = (extra: string[]) => writeFileSync(file, JSON.stringify({ ports: [...base, ...extra] }));
  writePorts([]);
  const tunnel = startUp(['--provider', 'local', '--name', name, '--file', file], env);
  try {
    const ready = await tunnel.ready(180_000);
    const ipv4 = String(ready.ipv4);
    const ns = (await provider.localEdge(name))!.layout.namespaces.client;
    const hold = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', holder(ipv4, 7000, 7001)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const report = () =>
      new Promise<{ tcpOpen: number; dropped: number; udpLost: number }>((resolve) => {
        hold.stdout.once('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString().trim().split('\n').pop()!)));
        hold.stdin.write('r\n');
      });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const before = await report();
    log(`holding ${before.tcpOpen} TCP connections and ${UDP} UDP sessions`);
    for (let i = 0; i < RELOADS; i++) {
      writePorts(i % 2 === 0 ? [`8080:${port(http)}/tcp`] : []);
      const result = await runCli(['reload', name], env);
      log(`reload ${i + 1}: exit ${result.code} ${result.stdout.trim() || result.stderr.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const after = await report();

    const pid = JSON.parse(readFileSync(join(env.INNISFREE_STATE_DIR, name, 'lock'), 'utf8')).pid as number;
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const newPort = 8100 + i;
      writePorts([`${newPort}:${port(http)}/tcp`]);
      const started = Date.now();
      process.kill(pid, 'SIGHUP');
      for (;;) {
        const got = await provider.runInClient(name, ['curl', '-sS', '--max-time', '1', `http://${ipv4}:${newPort}/`], {
          timeoutMs: 5000,
        });
        if (got.exitCode === 0) break;
        if (Date.now() - started > 120_000) throw new Error(`port ${newPort} did not answer within 120 s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      times.push(Date.now() - started);
      log(`SIGHUP to ${newPort} answering: ${times.at(-1)} ms`);
    }
    hold.kill('SIGKILL');
    const sorted = [...times].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        tcpHeld: before.tcpOpen,
        tcpDropped: after.dropped,
        udpSessions: UDP,
        udpSessionsLost: after.udpLost,
        reloads: RELOADS,
        sighupToAnswerMs: { samples: times, median: sorted[2] },
      }),
    );
  } finally {
    await tunnel.stop('SIGTERM');
    echo.close();
    udpEcho.close();
    http.close();
    dir.remove();
  }
}

await main();
