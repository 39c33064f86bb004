// Bench helper process: opens COUNT TCP connections to HOST:PORT, pushes BYTES through each to a traffic server in
// echo mode and waits for the echo (so every connection has carried data both ways), prints "HELD COUNT", and keeps
// them open until SIGTERM.
import { randomBytes } from 'node:crypto';
import { type Socket, connect } from 'node:net';

const [host = '127.0.0.1', portText = '0', countText = '1000', bytesText = '16384'] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const payload = randomBytes(Number(bytesText));
const sockets: Socket[] = [];

function open(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    sockets.push(socket);
    let echoed = 0;
    socket.once('connect', () => {
      socket.write('E');
      socket.write(payload);
    });
    socket.on('data', (chunk: Buffer) => {
      echoed += chunk.length;
      if (echoed >= payload.length) resolve();
    });
    socket.once('error', reject);
  });
}

// Batches keep the listen backlog from overflowing; what is measured is connections held, not the accept rate.
for (let opened = 0; opened < count; opened += 100) {
  await Promise.all(Array.from({ length: Math.min(100, count - opened) }, open));
}
process.stdout.write(`HELD ${sockets.length}\n`);
process.once('SIGTERM', () => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
setInterval(() => {}, 60_000);
