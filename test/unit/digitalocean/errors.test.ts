import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DigitalOceanError, parseErrorBody } from '../../../src/providers/digitalocean/api-errors.js';
import { md5Fingerprint } from '../../../src/providers/digitalocean/fingerprint.js';
import { relativeTo } from '../../../src/providers/digitalocean/pagination.js';
import { apiBaseUrl } from '../../../src/providers/digitalocean/client.js';
import { HTML_BAD_GATEWAY, HTML_GATEWAY_TIMEOUT } from '../../fake-do/faults.js';

const S = suite('digitalocean: error bodies');

S('the standard body, with the id in any casing', () => {
  assert.equal(
    parseErrorBody(
      '{"id":"not_found","message":"The resource you requested could not be found.","request_id":"r1"}',
      404,
    ),
    {
      id: 'not_found',
      message: 'The resource you requested could not be found.',
      requestId: 'r1',
    },
  );
  assert.is(parseErrorBody('{"id":"Unauthorized","message":"Unable to authenticate you"}', 401).id, 'unauthorized');
  assert.is(parseErrorBody('{"id":"Forbidden","message":"You do not have access"}', 403).id, 'forbidden');
});

S('an HTML page from the edge proxy becomes its title', () => {
  assert.equal(parseErrorBody(HTML_BAD_GATEWAY, 502, 'hdr'), { message: '502 Bad Gateway', requestId: 'hdr' });
  assert.is(parseErrorBody(HTML_GATEWAY_TIMEOUT, 504).message, '504 Gateway Time-out');
});

S('the tags endpoint shape, empty bodies and noise do not throw', () => {
  assert.is(
    parseErrorBody('{"error":"tag name is invalid","messages":null,"root_causes":["rpc error"]}', 400).message,
    'tag name is invalid',
  );
  assert.is(parseErrorBody('{"messages":null,"root_causes":["rpc error: bad"]}', 400).message, 'rpc error: bad');
  assert.is(parseErrorBody('', 503).message, 'service unavailable');
  assert.is(parseErrorBody('[1,2]', 500).message, 'internal server error');
  assert.is(parseErrorBody('\u0000\u0001garbage', 500).message, 'garbage');
  assert.is(parseErrorBody(undefined, 418).message, 'HTTP 418');
  assert.ok(parseErrorBody(`<html>${'x'.repeat(5000)}</html>`, 502).message.length <= 300);
});

S('messages quote DigitalOcean and hints say what to do', () => {
  const name = new DigitalOceanError({
    method: 'POST',
    path: '/v2/droplets',
    status: 422,
    body: {
      id: 'unprocessable_entity',
      message: 'Only valid hostname characters are allowed. (a-z, A-Z, 0-9, . and -)',
    },
  });
  assert.match(
    name.message,
    /POST \/v2\/droplets failed with 422 unprocessable_entity: "Only valid hostname characters/,
  );
  assert.match(name.hint!, /a-z, A-Z, 0-9/);
  assert.is(name.exitCode, 3);
  const limit = new DigitalOceanError({
    method: 'POST',
    path: '/v2/droplets',
    status: 422,
    body: { message: 'creating this/these droplet(s) will exceed your droplet limit' },
  });
  assert.match(limit.hint!, /droplet limit.*innisfree clean/);
  const key = new DigitalOceanError({
    method: 'POST',
    path: '/v2/account/keys',
    status: 422,
    body: { message: 'SSH Key is already in use on your account' },
  });
  assert.match(key.hint!, /already registered/);
  const auth = new DigitalOceanError({
    method: 'GET',
    path: '/v2/account',
    status: 401,
    body: { message: 'Unable to authenticate you' },
  });
  assert.match(auth.message, /rejected the API token/);
  const rate = new DigitalOceanError({
    method: 'GET',
    path: '/v2/droplets',
    status: 429,
    body: { message: 'API Rate limit exceeded.' },
    attempts: 5,
  });
  assert.match(rate.message, /429.*after 5 attempts.*API Rate limit exceeded/);
  assert.match(rate.hint!, /rate limit/);
});

const U = suite('digitalocean: small pure parts');

U('MD5 fingerprint of an OpenSSH public key (as ssh-keygen -E md5 -l prints it)', () => {
  // ssh-keygen -E md5 -lf on this key prints MD5:6f:07:4a:10:d5:5a:1e:c5:0e:cd:bc:bb:d5:bc:d9:03
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvXV7sdHMmIdYSgapGeO2mrN7DDA81ssr+m1v2lpeAy test';
  assert.is(md5Fingerprint(key), '6f:07:4a:10:d5:5a:1e:c5:0e:cd:bc:bb:d5:bc:d9:03');
  assert.is(md5Fingerprint(key), md5Fingerprint(`${key.split(' ').slice(0, 2).join(' ')} other-comment`));
  assert.throws(() => md5Fingerprint('not a key'));
});

U('next links are followed on the configured API base only', () => {
  assert.is(
    relativeTo('https://api.digitalocean.com', 'https://api.digitalocean.com/v2/droplets?page=2&per_page=200'),
    '/v2/droplets?page=2&per_page=200',
  );
  assert.is(relativeTo('http://127.0.0.1:9', 'https://elsewhere.example/v2/droplets?page=3'), '/v2/droplets?page=3');
  assert.is(
    relativeTo('https://proxy.example/do', 'https://proxy.example/do/v2/droplets?page=2'),
    '/v2/droplets?page=2',
  );
});

U('DIGITALOCEAN_API_URL: https, or plain http to this machine only', () => {
  assert.is(apiBaseUrl(undefined), 'https://api.digitalocean.com');
  assert.is(apiBaseUrl('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080');
  assert.throws(() => apiBaseUrl('http://api.example.com'), /unencrypted/);
  assert.throws(() => apiBaseUrl('nonsense'), /not a URL/);
});

S.run();
U.run();
