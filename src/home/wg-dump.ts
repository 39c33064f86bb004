// Parses `wg show <interface> dump`: one tab-separated line for the interface, then one line per peer. The
// interface line starts with the private key and peer lines carry preshared keys: the parser drops both at once and
// never puts a line's text into an error message, so no secret can travel further than this function.

export interface WgInterfaceInfo {
  /** null before a private key is set. */
  publicKey: string | null;
  listenPort: number;
  /** null when "off". */
  fwmark: number | null;
}

export interface WgPeerInfo {
  publicKey: string;
  /** "203.0.113.7:51820" or "[2001:db8::1]:51820"; null before the peer's address is known. */
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds of the latest handshake; 0 when there has been none. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds; null when "off". */
  persistentKeepalive: number | null;
}

export interface WgDump {
  interface: WgInterfaceInfo;
  peers: WgPeerInfo[];
}

export class WgDumpParseError extends Error {
  constructor(message: string) {
    super(`wg show dump: ${message}`);
    this.name = 'WgDumpParseError';
  }
}

export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0) throw new WgDumpParseError('empty output');
  const head = lines[0]!.split('\t');
  if (head.length !== 4) throw new WgDumpParseError(`line 1 has ${head.length} fields, expected 4 (interface line)`);
  const iface: WgInterfaceInfo = {
    publicKey: head[1] === '(none)' ? null : key(head[1]!, 1, 'public key'),
    listenPort: integer(head[2]!, 1, 'listen port'),
    fwmark: offOr(head[3]!, 1, 'fwmark'),
  };
  const peers = lines.slice(1).map((line, index) => {
    const lineNumber = index + 2;
    const fields = line.split('\t');
    if (fields.length !== 8)
      throw new WgDumpParseError(`line ${lineNumber} has ${fields.length} fields, expected 8 (peer line)`);
    const [publicKey, , endpoint, allowed, handshake, rx, tx, keepalive] = fields as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      publicKey: key(publicKey, lineNumber, 'peer public key'),
      endpoint: endpoint === '(none)' ? null : endpoint,
      allowedIps: allowed === '(none)' || allowed === '' ? [] : allowed.split(','),
      latestHandshake: integer(handshake, lineNumber, 'latest handshake'),
      rxBytes: integer(rx, lineNumber, 'rx bytes'),
      txBytes: integer(tx, lineNumber, 'tx bytes'),
      persistentKeepalive: offOr(keepalive, lineNumber, 'persistent keepalive'),
    };
  });
  return { interface: iface, peers };
}

/** Seconds since the peer's latest handshake, or null when it never completed one. */
export function handshakeAgeSeconds(peer: Pick<WgPeerInfo, 'latestHandshake'>, nowMs: number): number | null {
  if (peer.latestHandshake === 0) return null;
  return Math.max(0, Math.floor(nowMs / 1000) - peer.latestHandshake);
}

const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

function key(text: string, line: number, what: string): string {
  if (!BASE64_KEY.test(text)) throw new WgDumpParseError(`line ${line}: ${what} is not a WireGuard key`);
  return text;
}

function integer(text: string, line: number, what: string): number {
  if (!/^\d+$/.test(text)) throw new WgDumpParseError(`line ${line}: ${what} is not a number`);
  return Number(text);
}

function offOr(text: string, line: number, what: string): number | null {
  return text === 'off' ? null : integer(text, line, what);
}
