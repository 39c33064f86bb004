import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { policyRoutingDown, policyRoutingUp } from '../../src/home/routing.js';
import { systemExec } from '../../src/lib/context.js';
import { namespaceSkipReason, skipUnless, withTestbed } from '../helpers/netns.js';

const S = suite('policy routing (network namespace)');
const skip = skipUnless('policy routing tests', namespaceSkipReason);

if (!skip) {
  S('adds the source rules and table routes once, and removes them completely', async () => {
    await withTestbed('routing', async (bed) => {
      const ns = await bed.namespace();
      const device = bed.name('isfr');
      // A veth end stands in for the tunnel interface: routes only need a device that is up.
      await ns.ip('link', 'add', device, 'type', 'veth', 'peer', 'name', `${device}p`);
      await ns.ip('link', 'set', `${device}p`, 'up');
      await ns.ip('link', 'set', device, 'up');
      await ns.ip('addr', 'add', '10.50.7.2/30', 'dev', device);
      const target = {
        interface: device,
        netns: ns.name,
        routing: { table: 20007, priority: 20000, from: ['10.50.7.2', 'fd49:6e6e:6973:7::2'] },
      };
      const rules = async (family: string) =>
        (
          JSON.parse(await ns.ip(family, '-j', 'rule', 'show')) as Array<{
            priority: number;
            src: string;
            table: string;
          }>
        ).filter((r) => r.priority === 20000);
      const routes = async (family: string) =>
        JSON.parse((await ns.run('ip', [family, '-j', 'route', 'show', 'table', '20007'])).stdout || '[]') as Array<{
          dst: string;
          dev: string;
        }>;

      await policyRoutingUp(systemExec, target);
      await policyRoutingUp(systemExec, target);
      assert.equal(await rules('-4'), [{ priority: 20000, src: '10.50.7.2', table: '20007' }]);
      assert.equal(await rules('-6'), [{ priority: 20000, src: 'fd49:6e6e:6973:7::2', table: '20007' }]);
      assert.equal(
        (await routes('-4')).map((r) => [r.dst, r.dev]),
        [['default', device]],
      );
      assert.equal(
        (await routes('-6')).map((r) => [r.dst, r.dev]),
        [['default', device]],
      );
      // The rule really steers traffic from the tunnel address into the table.
      assert.match(
        await ns.ip('route', 'get', '203.0.113.9', 'from', '10.50.7.2'),
        new RegExp(`dev ${device} table 20007`),
      );

      await policyRoutingDown(systemExec, target);
      await policyRoutingDown(systemExec, target);
      assert.equal(await rules('-4'), []);
      assert.equal(await rules('-6'), []);
      assert.equal(await routes('-4'), []);
      assert.equal(await routes('-6'), []);
    });
  });

  S('the reply mark steers IPv6 too when the tunnel carries IPv6, and only then', async () => {
    await withTestbed('routing-mark', async (bed) => {
      const ns = await bed.namespace();
      const device = bed.name('isfm');
      await ns.ip('link', 'add', device, 'type', 'veth', 'peer', 'name', `${device}p`);
      await ns.ip('link', 'set', `${device}p`, 'up');
      await ns.ip('link', 'set', device, 'up');
      const marks = async (family: string) =>
        (
          JSON.parse(await ns.ip(family, '-j', 'rule', 'show')) as Array<{
            priority: number;
            fwmark?: string;
            table: string;
          }>
        )
          .filter((r) => r.priority === 20000 && r.fwmark !== undefined)
          .map((r) => [Number(r.fwmark), r.table]);
      const dual = {
        interface: device,
        netns: ns.name,
        routing: { table: 20008, priority: 20000, from: ['10.50.8.2', 'fd49:6e6e:6973:8::2'], fwmark: 20008 },
      };
      await policyRoutingUp(systemExec, dual);
      await policyRoutingUp(systemExec, dual);
      assert.equal(await marks('-4'), [[20008, '20008']]);
      assert.equal(await marks('-6'), [[20008, '20008']]);
      await policyRoutingDown(systemExec, dual);
      assert.equal(await marks('-6'), []);
      const v4only = { ...dual, routing: { ...dual.routing, from: ['10.50.8.2'] } };
      await policyRoutingUp(systemExec, v4only);
      assert.equal(await marks('-4'), [[20008, '20008']]);
      assert.equal(await marks('-6'), [], 'no IPv6 rule for an IPv4-only tunnel');
      await policyRoutingDown(systemExec, v4only);
      assert.equal(await marks('-4'), []);
    });
  });
}

S.run();
