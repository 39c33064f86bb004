// PROXY protocol v1 → v2. nginx's stream module sends only the v1 text header (`proxy_protocol on`); a service that
// wants v2 gets it from the home forwarder, which reads the v1 line nginx put first on the connection and writes
// the same facts as the binary v2 header (haproxy's proxy-protocol.txt, section 2.2) before the rest of the bytes.
import { isIP } from 'node:net';

/** The longest v1 header, CRLF included (the specification's bound). */
export const V1_MAX_LENGTH = 107;

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 2, command LOCAL (no addresses) or PROXY. */
const V2_LOCAL = 0x20;
const V2_PROXY = 0x21;
const TCP4 = 0x11;
const TCP6 = 0x21;

export type V1Parse =
  | { state: 'incomplete' }
  | { state: 'invalid'; reason: string }
  /** `length`: the bytes of the v1 header (CRLF included) the v2 header replaces. */
  | { state: 'done'; length: number; v2: Buffer };

/** Looks for a complete v1 header at the start of `bytes` and returns its v2 form. */
export function translateV1(bytes: Buffer): V1Parse {
  const end = bytes.indexOf('\r\n');
  if (end === -1) {
    if (bytes.length >= V1_MAX_LENGTH) return { state: 'invalid', reason: 'no PROXY v1 header end within 107 bytes' };
    const prefix = bytes.subarray(0, 6).toString('latin1');
    return 'PROXY '.startsWith(prefix) || prefix === 'PROXY '
      ? { state: 'incomplete' }
      : { state: 'invalid', reason: 'no PROXY v1 header' };
  }
  const line = bytes.subarray(0, end).toString('latin1');
  const length = end + 2;
  if (length > V1_MAX_LENGTH) return { state: 'invalid', reason: 'PROXY v1 header longer than 107 bytes' };
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') return { state: 'invalid', reason: 'no PROXY v1 header' };
  if (parts[1] === 'UNKNOWN') return { state: 'done', length, v2: v2Header(V2_LOCAL, 0x00, Buffer.alloc(0)) };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6'))
    return { state: 'invalid', reason: `malformed PROXY v1 header "${line}"` };
  const [, family, source, destination, sourcePort, destinationPort] = parts as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const version = family === 'TCP4' ? 4 : 6;
  if (isIP(source) !== version || isIP(destination) !== version)
    return { state: 'invalid', reason: `malformed PROXY v1 addresses "${line}"` };
  const ports = [sourcePort, destinationPort].map((p) => (/^\d{1,5}$/.test(p) ? Number(p) : Number.NaN));
  if (ports.some((p) => !(p >= 0 && p <= 65535)))
    return { state: 'invalid', reason: `malformed PROXY v1 ports "${line}"` };
  const addresses = Buffer.concat([
    addressBytes(source, version),
    addressBytes(destination, version),
    portBytes(ports[0]!),
    portBytes(ports[1]!),
  ]);
  return { state: 'done', length, v2: v2Header(V2_PROXY, version === 4 ? TCP4 : TCP6, addresses) };
}

function v2Header(command: number, family: number, addresses: Buffer): Buffer {
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head, 0);
  head[12] = command;
  head[13] = family;
  head.writeUInt16BE(addresses.length, 14);
  return Buffer.concat([head, addresses]);
}

function portBytes(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port, 0);
  return bytes;
}

function addressBytes(address: string, version: 4 | 6): Buffer {
  if (version === 4) return Buffer.from(address.split('.').map(Number));
  // Expand "::" into the missing zero groups, then 8 groups of 16 bits.
  const [head, tail] = address.includes('::') ? (address.split('::') as [string, string]) : [address, undefined];
  // A trailing dotted quad (::ffff:192.0.2.1) is two groups.
  const groups = (text: string): string[] =>
    text === ''
      ? []
      : text.split(':').flatMap((g) => {
          if (!g.includes('.')) return [g];
          const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
          return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
        });
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all =
    tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(Number.parseInt(group, 16), i * 2));
  return bytes;
}
