import { runInVm } from './test/helpers/vm.js';
const t0 = Date.now();
const r = await runInVm(['ip link set lo up', 'modprobe wireguard', 'cd /work/wt/vm-bed', `time node --import tsx ${process.argv[2]}`].join('\n'), { timeoutMs: 900_000, memoryMb: 1536, onOutput: (t) => process.stdout.write(t) });
console.log('\nEXIT', r.code, 'timedOut', r.timedOut, 'ms', Date.now() - t0);
