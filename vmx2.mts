import { readFileSync } from 'node:fs';
import { runInVm } from './test/helpers/vm.js';
const r = await runInVm(['ip link set lo up', 'cd /work/wt/vm-bed', readFileSync('/tmp/dbg.sh', 'utf8')].join('\n'), { timeoutMs: 600_000, memoryMb: 1536 });
console.log(r.output);
