// Boots a throwaway VM with the Debian kernel (which has wireguard.ko, unlike the kernel tests normally run on) and
// runs one shell command inside it. The VM's root file system is this machine's own, read-only over 9p with a tmpfs
// overlay, so node, wg, nginx and sshd are the same binaries. Output streams back over the serial console; the exit
// code comes back on a marker line. The qemu process is always killed (timeout, error, or normal end).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';

// Load order matters: fscache needs netfs, 9p needs fscache (testbed facts).
const MODULES = [
  'netfs',
  'fscache',
  '9pnet',
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  '9pnet_virtio',
  '9p',
  'overlay',
];

export interface VmKernel {
  version: string;
  vmlinuz: string;
  modules: string;
}

/** Why a VM cannot boot here, or undefined when it can. */
export function vmUnavailable(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { stdio: 'ignore' }).status !== 0) {
    return 'qemu-system-x86_64 is not installed (Debian package qemu-system-x86)';
  }
  if (!existsSync('/bin/busybox') && !existsSync('/usr/bin/busybox'))
    return 'busybox is not installed (busybox-static)';
  if (!findKernel()) return 'no Debian kernel with modules in /boot and /lib/modules (package linux-image-amd64)';
  return undefined;
}

export function findKernel(): VmKernel | undefined {
  if (!existsSync('/boot') || !existsSync('/lib/modules')) return undefined;
  for (const entry of readdirSync('/boot').sort().reverse()) {
    const match = /^vmlinuz-(.+)$/.exec(entry);
    if (!match) continue;
    const version = match[1]!;
    const modules = join('/lib/modules', version);
    if (existsSync(join(modules, 'kernel'))) return { version, vmlinuz: join('/boot', entry), modules };
  }
  return undefined;
}

function findModule(root: string, name: string): string | undefined {
  const files = spawnSync('find', [join(root, 'kernel'), '-name', `${name}.ko*`], { encoding: 'utf8' }).stdout;
  return files.split('\n').find((f) => f !== '');
}

/**
 * Builds the initramfs: busybox as /init, the 9p and overlay modules, and a script that chroots into the overlay.
 * `share`, a host directory, is mounted at its own path last, so a checkout under /tmp or /root (tmpfs in the guest)
 * is still seen.
 */
function buildInitramfs(kernel: VmKernel, dir: string, share: string | undefined): string {
  const root = join(dir, 'initramfs');
  for (const sub of ['bin', 'mods', 'host', 'upper', 'new', 'proc', 'sys', 'dev'])
    mkdirSync(join(root, sub), { recursive: true });
  copyFileSync(existsSync('/bin/busybox') ? '/bin/busybox' : '/usr/bin/busybox', join(root, 'bin/busybox'));
  const insmods: string[] = [];
  for (const name of MODULES) {
    const path = findModule(kernel.modules, name);
    if (!path) continue; // built into this kernel
    const base = path.split('/').pop()!;
    if (base.endsWith('.xz') || base.endsWith('.zst')) {
      throw new Error(`compressed kernel module ${base}: the initramfs needs plain .ko files`);
    }
    copyFileSync(path, join(root, 'mods', base));
    insmods.push(`/bin/busybox insmod /mods/${base}`);
  }
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox mount -t proc proc /proc',
    '/bin/busybox mount -t sysfs sys /sys',
    '/bin/busybox mount -t devtmpfs dev /dev',
    ...insmods,
    '/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /host',
    '/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /job',
    '/bin/busybox mount -t tmpfs tmpfs /upper',
    '/bin/busybox mkdir -p /upper/u /upper/w',
    '/bin/busybox mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w /new',
    'for d in proc sys dev run tmp job; do /bin/busybox mkdir -p /new/$d; done',
    '/bin/busybox mount -t proc proc /new/proc',
    '/bin/busybox mount -t sysfs sys /new/sys',
    '/bin/busybox mount -t devtmpfs dev /new/dev',
    '/bin/busybox mount -t tmpfs tmpfs /new/run',
    '/bin/busybox mount -t tmpfs tmpfs /new/tmp',
    // root's home as on a fresh machine: this host's ~/.bashrc (pyenv here) runs on every SSH command to a local
    // edge, and under emulation it costs seconds each time.
    '/bin/busybox mount -t tmpfs -o mode=0700 tmpfs /new/root',
    '/bin/busybox mount --bind /job /new/job',
    ...(share
      ? [
          `/bin/busybox mkdir -p '/new${share}'`,
          `/bin/busybox mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 share '/new${share}'`,
        ]
      : []),
    // The kernel runs its module loader from the initramfs root, not the chroot: hand requests to the chroot's
    // modprobe, so veth, nf_tables and the rest load on demand as on a booted system.
    'echo /bin/modprobe-in-root > /proc/sys/kernel/modprobe',
    '/bin/busybox chroot /new /bin/sh /job/cmd.sh',
    'echo "@@VM-EXIT $?@@"',
    'echo o > /proc/sysrq-trigger',
    '/bin/busybox sleep 60',
  ].join('\n');
  mkdirSync(join(root, 'job'));
  writeFileSync(
    join(root, 'bin/modprobe-in-root'),
    '#!/bin/busybox sh\nexec /bin/busybox chroot /new /sbin/modprobe "$@"\n',
    { mode: 0o755 },
  );
  writeFileSync(join(root, 'init'), `${init}\n`, { mode: 0o755 });
  const cpio = join(dir, 'init.cpio.gz');
  const packed = spawnSync('sh', ['-c', `cd '${root}' && find . | cpio -o -H newc --quiet | gzip -1 > '${cpio}'`]);
  if (packed.status !== 0) throw new Error(`packing the initramfs failed: ${packed.stderr}`);
  return cpio;
}

export interface VmResult {
  code: number | undefined;
  output: string;
  timedOut: boolean;
}

/** Runs `script` (POSIX sh) as root inside a fresh VM; /job inside is a host directory shared with the caller. */
export async function runInVm(
  script: string,
  options: {
    timeoutMs?: number;
    memoryMb?: number;
    cpus?: number;
    onOutput?: (text: string) => void;
    /** A host directory the guest sees read-only at the same path, wherever it is. */
    share?: string;
  } = {},
): Promise<VmResult> {
  const kernel = findKernel();
  if (!kernel) throw new Error('no kernel: call vmUnavailable() first');
  const dir = mkdtempSync(join(tmpdir(), `innisfree-vm-${randomBytes(3).toString('hex')}-`));
  const job = join(dir, 'job');
  mkdirSync(job);
  writeFileSync(join(job, 'cmd.sh'), `cd /\n${script}\n`);
  try {
    const initrd = buildInitramfs(kernel, dir, options.share);
    const args = [
      // Multi-threaded TCG: one host thread per guest CPU, so the guest gets what the host can spare.
      '-machine',
      'pc',
      '-accel',
      'tcg,thread=multi',
      '-cpu',
      'max',
      '-smp',
      String(options.cpus ?? Math.min(2, cpus().length)),
      '-m',
      String(options.memoryMb ?? 1024),
      '-nographic',
      '-no-reboot',
      '-nodefaults',
      '-serial',
      'stdio',
      '-kernel',
      kernel.vmlinuz,
      '-initrd',
      initrd,
      '-append',
      'console=ttyS0 panic=-1 quiet',
      '-virtfs',
      'local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap',
      '-virtfs',
      `local,path=${job},mount_tag=job,security_model=none,multidevs=remap`,
      ...(options.share
        ? ['-virtfs', `local,path=${options.share},mount_tag=share,security_model=none,readonly=on,multidevs=remap`]
        : []),
    ];
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      options.onOutput?.(text);
    };
    qemu.stdout.on('data', collect);
    qemu.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
    }, options.timeoutMs ?? 300_000);
    await new Promise<void>((resolve) => qemu.on('close', () => resolve()));
    clearTimeout(timer);
    const marker = /@@VM-EXIT (\d+)@@/.exec(output);
    return { code: marker ? Number(marker[1]) : undefined, output, timedOut };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs one guest test file (test/vm/guest/*.guest.ts, compiled: npm test builds dist/ first) in a fresh VM and
 * asserts that it passed; returns its output. esbuild under emulation would cost more than the test itself.
 */
export async function runGuestTest(file: string, timeoutMs = 480_000): Promise<string> {
  const repo = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  const compiled = file.replace(/^test\//, 'dist/test/').replace(/\.ts$/, '.js');
  const result = await runInVm(
    ['ip link set lo up', 'modprobe wireguard', `cd '${repo}'`, `node ${compiled}`].join('\n'),
    // The checkout is shared on its own: one under /tmp or /root would be hidden by the guest's tmpfs there.
    { timeoutMs, memoryMb: 1536, share: repo },
  );
  assert.is(result.timedOut, false, `the VM timed out:\n${result.output}`);
  assert.is(result.code, 0, `guest tests failed:\n${result.output}`);
  const passed = /Passed:\s+(\d+)/.exec(result.output);
  const total = /Total:\s+(\d+)/.exec(result.output);
  assert.ok(
    passed && total && passed[1] === total[1] && Number(total[1]) > 0,
    `no passing guest tests reported:\n${result.output}`,
  );
  return result.output;
}
