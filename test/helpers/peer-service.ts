// Test helper process: a service that tells each client the address it sees, the way a real service would log it.
//   node peer-service.js HOST PORT     TCP: answers "PEER <addr>:<port>\n" and closes; UDP: answers each datagram
//                                     with "PEER <addr>:<port>" from the same socket (bound to HOST, e.g. 0.0.0.0)
// Prints "READY" once both are bound.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const host = process.argv[2] ?? '127.0.0.1';
const port = Number(process.argv[3] ?? '0');
const tcp = createServer((socket) => {
  socket.on('error', () => {});
  socket.end(`PEER ${socket.remoteAddress}:${socket.remotePort}\n`);
});
await new Promise<void>((resolve) => tcp.listen(port, host, resolve));
const udp = createSocket('udp4');
udp.on('message', (_message, remote) => udp.send(`PEER ${remote.address}:${remote.port}`, remote.port, remote.address));
await new Promise<void>((resolve) => udp.bind(port, host, resolve));
process.stdout.write('READY\n');
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
