// The one argv conversion (src/lib/argv.ts): values stay exactly as typed, and argv reads as cac/mri read it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { optionKey, optionSpec, parseArgv } from '../../src/lib/argv.js';
import { camelCase } from '../../src/lib/names.js';

const specs = [
  '-n, --name <name>',
  '-p, --ports <ports>',
  '--port <port>',
  '--mtu <bytes>',
  '--ipv6-pool <cidr>',
  '--token-file <path>',
  '--json',
  '--release-ip',
  '--no-wait',
  '--verbose',
].map(optionSpec);

const argv = suite('argv: one conversion of the command line');

argv('numeric-looking values stay strings, as typed', () => {
  const parsed = parseArgv(
    ['plan', '--name', '007', '-p', '1e3', '--mtu=0x10', '--ipv6-pool', 'fd00::/48', '--port', '080'],
    specs,
  );
  assert.equal(parsed.positional, ['plan']);
  assert.equal(parsed.options, {
    wait: true,
    name: '007',
    ports: '1e3',
    mtu: '0x10',
    ipv6Pool: 'fd00::/48',
    port: '080',
  });
});

argv('positional arguments stay strings too, after a boolean as well', () => {
  assert.equal(parseArgv(['status', '--json', '007'], specs).positional, ['status', '007']);
});

argv('long, short and inline spellings; repeated options make a list', () => {
  const parsed = parseArgv(
    ['up', '-n=web', '--ports=443', '--port', '80', '--port', '81', '--token-file', '/t'],
    specs,
  );
  assert.equal(parsed.options.name, 'web');
  assert.equal(parsed.options.ports, '443');
  assert.equal(parsed.options.port, ['80', '81']);
  assert.equal(parsed.options.tokenFile, '/t');
});

argv('an empty value is a value; a value that starts with "-" is none', () => {
  assert.equal(parseArgv(['plan', '--name', ''], specs).options.name, '');
  assert.equal(parseArgv(['plan', '--name', '--json'], specs).options, { wait: true, name: true, json: true });
  assert.equal(parseArgv(['plan', '--name'], specs).options.name, true);
});

argv('booleans never take the next word, except true and false; kebab-case ones too', () => {
  assert.equal(parseArgv(['down', '--release-ip', 'web'], specs), {
    positional: ['down', 'web'],
    options: { wait: true, releaseIp: true },
    rest: [],
    unknown: [],
  });
  assert.equal(parseArgv(['plan', '--json', 'false'], specs).options.json, false);
  assert.equal(parseArgv(['plan', '--json=false'], specs).options.json, false);
  assert.equal(parseArgv(['plan', '--json=yes'], specs).positional, ['plan', 'yes']);
});

argv('--no-NAME: a negated option defaults to true and is turned off', () => {
  assert.equal(parseArgv(['image'], specs).options.wait, true);
  assert.equal(parseArgv(['image', '--no-wait'], specs).options.wait, false);
  assert.equal(parseArgv(['plan', '--no-name'], specs).options.name, false);
});

argv('everything after -- is left alone', () => {
  const parsed = parseArgv(['ssh', 'web', '--', 'ls', '--name', '1e3'], specs);
  assert.equal(parsed.positional, ['ssh', 'web']);
  assert.equal(parsed.rest, ['ls', '--name', '1e3']);
  assert.is(parsed.options.name, undefined);
});

argv('undeclared options are reported as written; grouped short flags one by one', () => {
  assert.equal(parseArgv(['plan', '--prots', '443'], specs).unknown, ['--prots']);
  assert.equal(parseArgv(['plan', '-xy'], specs).unknown, ['-x', '-y']);
  assert.equal(parseArgv(['plan', '--no-such'], specs).unknown, ['--such']);
});

argv('an option is keyed by its longest name, camel-cased', () => {
  assert.is(optionKey(optionSpec('-n, --name <name>')), 'name');
  assert.is(optionKey(optionSpec('--proxy-protocol-version <1|2>')), 'proxyProtocolVersion');
  assert.equal(optionSpec('--no-wait'), { names: ['wait'], takesValue: false, negated: true, rawName: '--no-wait' });
  assert.is(camelCase('ipv6-pool'), 'ipv6Pool');
  assert.is(camelCase('reserved-ip'), 'reservedIp');
});

argv.run();
