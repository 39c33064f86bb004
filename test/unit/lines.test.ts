import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLineSplitter, stripAnsi } from '../../src/lib/lines.js';

const S = suite('lines');

S('ANSI colours are stripped', () => {
  assert.is(stripAnsi('🚀 ❌ [deploy] [\x1b[1;31mERROR\x1b[0m] boom'), '🚀 ❌ [deploy] [ERROR] boom');
  assert.is(stripAnsi('\x1b]0;title\x07plain'), 'plain');
});

S('chunks split anywhere become whole lines, CRLF and split UTF-8 included', () => {
  const lines: string[] = [];
  const splitter = createLineSplitter((l) => lines.push(l));
  const bytes = Buffer.from('one\r', 'utf8');
  splitter.push(bytes);
  splitter.push('\ntw');
  const rocket = Buffer.from('o 🚀\nthree\rfour', 'utf8');
  splitter.push(rocket.subarray(0, 4));
  splitter.push(rocket.subarray(4));
  splitter.flush();
  assert.equal(lines, ['one', 'two 🚀', 'three', 'four']);
});

S.run();
