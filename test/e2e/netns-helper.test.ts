import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { namespaceSkipReason, pidAlive, run, skipUnless, withTestbed } from '../helpers/netns.js';

const S = suite('test helper: network namespace test beds');
const skip = skipUnless('netns helper tests', namespaceSkipReason);

async function namespaceExists(name: string): Promise<boolean> {
  return (await run('ip', ['netns', 'list'])).stdout.split('\n').some((line) => line.split(' ')[0] === name);
}

if (!skip) {
  S('everything a bed made is gone afterwards, including processes it did not track', async () => {
    let names: string[] = [];
    let pids: number[] = [];
    await withTestbed('helper', async (bed) => {
      const a = await bed.namespace();
      const b = await bed.namespace();
      names = [a.name, b.name];
      const veth = await bed.veth(a, b, { a: '192.0.2.1/30', b: '192.0.2.2/30' });
      assert.match(await a.ip('-br', 'addr', 'show', 'dev', veth.a), /192\.0\.2\.1\/30/);
      const tracked = bed.spawn(a, 'sleep', ['60']);
      // A process started in the namespace behind the bed's back (a daemon that forked away).
      const stray = Number((await b.runOk('sh', ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'])).trim());
      pids = [tracked.pid, stray];
      assert.ok(pids.every(pidAlive));
      assert.ok(await namespaceExists(a.name));
    });
    for (const name of names) assert.not.ok(await namespaceExists(name), `${name} removed`);
    for (const pid of pids) assert.not.ok(pidAlive(pid), `process ${pid} stopped`);
  });

  S('a leftover fails the test, and names fit interface limits', async () => {
    try {
      await withTestbed('leak', async (bed) => {
        assert.ok(bed.name('isfwh').length <= 15);
        bed.track({
          describe: 'pretend resource',
          release: async () => {},
          check: async () => 'pretend resource still exists',
        });
      });
      assert.unreachable('a leak passed');
    } catch (error) {
      assert.match((error as Error).message, /left resources behind: pretend resource still exists/);
    }
  });

  S('a failing body still tears down and reports its own error', async () => {
    let name = '';
    try {
      await withTestbed('failing', async (bed) => {
        name = (await bed.namespace()).name;
        throw new Error('body failed');
      });
      assert.unreachable('error swallowed');
    } catch (error) {
      assert.is((error as Error).message, 'body failed');
    }
    assert.not.ok(await namespaceExists(name));
  });
}

S.run();
