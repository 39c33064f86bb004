// PROXY v1 → v2 in the home forwarder: the header bytes against the specification (haproxy proxy-protocol.txt
// 2.2), and the forwarder passing a v1 connection on as v2 followed by the untouched payload.
import { connect, createServer, type Socket } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startForwarder } from '../../src/home/forwarder/index.js';
import { translateV1 } from '../../src/home/forwarder/proxy-header.js';

const SIGNATURE = '0d0a0d0a000d0a515549540a';

const T = suite('PROXY v1 to v2');

T('TCP4, TCP6 (with "::" and a mapped IPv4) and UNKNOWN become the binary v2 header', () => {
  const v4 = translateV1(Buffer.from('PROXY TCP4 203.0.113.9 10.50.0.2 40000 443\r\nGET /'));
  assert.is(v4.state, 'done');
  if (v4.state !== 'done') return;
  assert.is(v4.length, 'PROXY TCP4 203.0.113.9 10.50.0.2 40000 443\r\n'.length);
  assert.is(v4.v2.toString('hex'), `${SIGNATURE}2111000c` + 'cb007109' + '0a320002' + '9c40' + '01bb');
  const v6 = translateV1(Buffer.from('PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 1 65535\r\n'));
  assert.is(v6.state, 'done');
  if (v6.state !== 'done') return;
  assert.is(
    v6.v2.toString('hex'),
    `${SIGNATURE}21210024` + '20010db8000000000000000000000001' + '00000000000000000000ffff0a000001' + '0001' + 'ffff',
  );
  const unknown = translateV1(Buffer.from('PROXY UNKNOWN\r\n'));
  assert.is(unknown.state === 'done' && unknown.v2.toString('hex'), `${SIGNATURE}20000000`, 'LOCAL, no addresses');
});

T('an incomplete header waits; anything else is invalid', () => {
  assert.is(translateV1(Buffer.from('PRO')).state, 'incomplete');
  assert.is(translateV1(Buffer.from('PROXY TCP4 1.2.3.4')).state, 'incomplete');
  for (const text of [
    'GET / HTTP/1.1\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    'PROXY TCP4 ::1 ::1 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n',
    `PROXY ${'x'.repeat(120)}`,
    'HELLO',
  ]) {
    assert.is(translateV1(Buffer.from(text)).state, 'invalid', text);
  }
});

T(
  'the forwarder passes a v1 connection on as v2 and the payload unchanged; a connection without a header is reset',
  async () => {
    const received: Buffer[] = [];
    const service = createServer((socket: Socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => {
        received.push(Buffer.concat(chunks));
        socket.end();
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const servicePort = (service.address() as { port: number }).port;
    const forwarder = await startForwarder([
      {
        protocol: 'tcp',
        listenAddress: '127.0.0.1',
        listenPort: 0,
        targetHost: '127.0.0.1',
        targetPort: servicePort,
        proxyProtocol: 'v1-to-v2',
      },
    ]);
    const port = forwarder.listeners()[0]!.port;
    const send = (parts: string[]): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
        socket.on('close', () => resolve('closed'));
        socket.on('connect', async () => {
          // The header in pieces, as TCP may deliver it.
          for (const part of parts) {
            socket.write(part);
            await new Promise((r) => setTimeout(r, 20));
          }
          socket.end();
        });
      });
    try {
      await send(['PROXY TCP4 203.0.', '113.9 10.50.0.2 40000 443\r', '\nhello ', 'world']);
      assert.is(received.length, 1);
      const bytes = received[0]!;
      assert.is(bytes.subarray(0, 12).toString('hex'), SIGNATURE, 'v2 signature first');
      assert.is(bytes.subarray(12, 28).toString('hex'), '2111000ccb0071090a3200029c4001bb');
      assert.is(bytes.subarray(28).toString(), 'hello world', 'the payload follows unchanged');
      const refused = await send(['GET / HTTP/1.0\r\n\r\n']);
      assert.match(refused, /ECONNRESET|closed/);
      assert.is(received.length, 1, 'nothing without a valid header reached the service');
      assert.ok(forwarder.counters()[0]!.errors >= 1, 'counted as an error');
    } finally {
      await forwarder.close();
      service.close();
    }
  },
);

T.run();
