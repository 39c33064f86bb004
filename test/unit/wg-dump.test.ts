import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WgDumpParseError, handshakeAgeSeconds, parseWgDump } from '../../src/home/wg-dump.js';

// Keys in the shape wg prints them (44 characters of base64); made up for the test.
const PRIVATE = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PUBLIC = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PEER2 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';

const dump = [
  [PRIVATE, PUBLIC, '51820', 'off'].join('\t'),
  [PEER, '(none)', '203.0.113.7:51820', '10.50.0.1/32,fd49::1/128', '1763779200', '1234', '5678', '25'].join('\t'),
  [PEER2, PSK, '(none)', '(none)', '0', '0', '0', 'off'].join('\t'),
  '',
].join('\n');

const S = suite('wg show dump');

S('parses the interface and every peer', () => {
  const parsed = parseWgDump(dump);
  assert.equal(parsed.interface, { publicKey: PUBLIC, listenPort: 51820, fwmark: null });
  assert.equal(parsed.peers, [
    {
      publicKey: PEER,
      endpoint: '203.0.113.7:51820',
      allowedIps: ['10.50.0.1/32', 'fd49::1/128'],
      latestHandshake: 1763779200,
      rxBytes: 1234,
      txBytes: 5678,
      persistentKeepalive: 25,
    },
    {
      publicKey: PEER2,
      endpoint: null,
      allowedIps: [],
      latestHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepalive: null,
    },
  ]);
});

S('drops the private and preshared keys', () => {
  const text = JSON.stringify(parseWgDump(dump));
  assert.not.ok(text.includes(PRIVATE));
  assert.not.ok(text.includes(PSK));
});

S('an interface without a key yet and with a fwmark', () => {
  const parsed = parseWgDump(['(none)', '(none)', '0', '51'].join('\t'));
  assert.equal(parsed.interface, { publicKey: null, listenPort: 0, fwmark: 51 });
  assert.equal(parsed.peers, []);
});

S('IPv6 endpoints keep their brackets', () => {
  const parsed = parseWgDump(
    `${[PRIVATE, PUBLIC, '0', 'off'].join('\t')}\n` +
      `${[PEER, '(none)', '[2001:db8::7]:51820', '0.0.0.0/0', '0', '0', '0', 'off'].join('\t')}\n`,
  );
  assert.is(parsed.peers[0]!.endpoint, '[2001:db8::7]:51820');
});

S('malformed output is an error that never quotes the line', () => {
  for (const text of ['', `${PRIVATE}\t${PUBLIC}\n`, `${PRIVATE}\t${PUBLIC}\tport\toff`, `${dump}${PEER}\t(none)\n`]) {
    try {
      parseWgDump(text);
      assert.unreachable(`accepted ${JSON.stringify(text.slice(0, 20))}`);
    } catch (error) {
      assert.instance(error, WgDumpParseError);
      assert.not.ok((error as Error).message.includes(PRIVATE));
    }
  }
});

S('handshake age', () => {
  assert.is(handshakeAgeSeconds({ latestHandshake: 0 }, 1_763_779_300_000), null);
  assert.is(handshakeAgeSeconds({ latestHandshake: 1763779200 }, 1_763_779_300_500), 100);
  // A clock slightly behind the kernel's never yields a negative age.
  assert.is(handshakeAgeSeconds({ latestHandshake: 1763779200 }, 1_763_779_199_000), 0);
});

S.run();
