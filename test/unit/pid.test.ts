// Pids read from pid files: an empty or half-written file must never become 0 (kill(0) signals our own process group:
// the test runner died by SIGTERM in CI when a test sshd's pid file was read before sshd wrote it).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePid } from '../../src/lib/pid.js';

const S = suite('pid files');

S('a pid file being written reads as no pid, never as 0', () => {
  assert.is(parsePid(''), undefined);
  assert.is(parsePid('\n'), undefined);
  assert.is(parsePid('   '), undefined);
});

S('only a whole number above 1 is a pid', () => {
  assert.is(parsePid('4242\n'), 4242);
  assert.is(parsePid(' 17 '), 17);
  for (const text of ['0', '1', '-1', '-4242', '12a', '1.5', '1e3', '0x10', 'nginx', '12345678901']) {
    assert.is(parsePid(text), undefined, JSON.stringify(text));
  }
});

S.run();
