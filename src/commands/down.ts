// innisfree down NAME: destroys the tunnel's edge and what was made for it (SSH key registration, DNS records,
// cloud firewall; a reserved IP only with --release-ip), then removes the tunnel's local state. Works with or
// without local state, and refuses while the tunnel is up in a live process.
import { existsSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { BusyError, UsageError } from '../lib/errors.js';
import { createProvider } from '../providers/index.js';
import { tokenFileFrom } from '../spec/load.js';
import { DEFAULTS } from '../spec/tunnel.js';
import { TunnelName } from '../spec/primitives.js';
import { readTextIfExists } from '../state/files.js';
import { acquireLock, isHolderAlive, readLockHolder } from '../state/lock.js';
import { stateRoot, tunnelPaths } from '../state/paths.js';
import { ResourceLedger } from '../state/resources.js';
import { readStatus } from '../state/status.js';
import { keptReservedIpOf, setKeptReservedIp } from '../state/kept-reserved-ips.js';

export interface DownOptions {
  name: string;
  flags: Record<string, unknown>;
  json: boolean;
}

export async function downCommand(
  ctx: Pick<Context, 'clock' | 'emit' | 'env' | 'signal'>,
  options: DownOptions,
): Promise<CommandOutcome> {
  const { name } = options;
  if (!TunnelName.safeParse(name).success) {
    throw new UsageError(`"${name}" is not a tunnel name`, {
      hint: 'tunnel names are a-z, 0-9 and "-"; see innisfree list',
    });
  }
  const root = stateRoot(ctx.env);
  const paths = tunnelPaths(root, name);
  const holder = await readLockHolder(paths.lock);
  if (holder && holder.pid !== 0 && isHolderAlive(holder)) {
    throw new BusyError(`tunnel ${name} is up in pid ${holder.pid}; stop it first`, {
      hint: `stop that process (Ctrl-C in its terminal, or kill ${holder.pid}), then run innisfree down ${name} again`,
    });
  }
  const status = await readStatus(paths);
  const providerName =
    typeof options.flags.provider === 'string' ? options.flags.provider : (status?.provider ?? DEFAULTS.provider);
  const provider = await createProvider(providerName, ctx, { tokenFile: await tokenFileFrom(options.flags, ctx.env) });

  const hadRoot = existsSync(root);
  const hadState = existsSync(paths.dir);
  const keptBefore = await keptReservedIpOf(root, name);
  const keptBefore6 = await keptReservedIpOf(root, name, 6);
  // Nothing here and nothing there: a mistyped name, said as such, and no state directory made to hold a lock.
  // A reserved IP kept by an earlier down is something there: --release-ip releases it.
  if (
    !hadState &&
    keptBefore === undefined &&
    keptBefore6 === undefined &&
    (await provider.findEdge(name)) === undefined
  ) {
    throw new UsageError(`no tunnel named "${name}": no state in ${root} and no edge at ${providerName}`, {
      hint:
        `innisfree status lists the tunnels with state here, innisfree list --provider ${providerName} the ` +
        `edges there`,
    });
  }
  const lock = await acquireLock(paths.lock, `tunnel ${name}`, 'innisfree down', new Date(ctx.clock.now()));
  const removeRoot = async (): Promise<void> => {
    if (!hadRoot) await rmdir(root).catch(() => {});
  };
  let edgeName: string | undefined;
  let reserved: string | undefined;
  let reserved6: string | undefined;
  const releaseIp = options.flags.releaseIp === true;
  try {
    const edge = await provider.findEdge(name);
    edgeName = edge?.name;
    reserved = edge?.directIpv4 ? edge.ipv4 : undefined;
    reserved6 = edge?.directIpv6 ? edge.ipv6 : undefined;
    const sshPublicKey = (await readTextIfExists(paths.sshPublic))?.trim();
    await provider.destroyEdge(name, {
      releaseIp,
      ...(keptBefore ? { keptReservedIp: keptBefore } : {}),
      ...(keptBefore6 ? { keptReservedIpv6: keptBefore6 } : {}),
      ...(sshPublicKey ? { sshPublicKey } : {}),
      // What a killed `up` recorded and no search by tag finds (a DNS record, a key registered under no droplet).
      ledger: await ResourceLedger.open(paths.resources, name, () => ctx.clock.now()),
      emit: ctx.emit,
      signal: ctx.signal,
    });
  } catch (error) {
    await lock.release();
    // A state directory this command made only to hold its lock is not left behind.
    if (!hadState) {
      await rm(paths.dir, { recursive: true, force: true });
      await removeRoot();
    }
    throw error;
  }
  await rm(paths.dir, { recursive: true, force: true });
  // The kept IP is remembered outside the tunnel's directory, so --release-ip works after this down too.
  reserved ??= keptBefore;
  await setKeptReservedIp(root, name, releaseIp ? undefined : reserved);
  reserved6 ??= keptBefore6;
  await setKeptReservedIp(root, name, releaseIp ? undefined : reserved6, 6);
  await removeRoot();
  if (options.json) {
    const summary = {
      tunnel: name,
      provider: providerName,
      destroyed: edgeName ?? null,
      localStateRemoved: hadState,
      reservedIp: reserved ?? null,
      reservedIpReleased: reserved !== undefined && releaseIp,
      reservedIpv6: reserved6 ?? null,
      reservedIpv6Released: reserved6 !== undefined && releaseIp,
    };
    return { output: `${JSON.stringify(summary, null, 2)}\n` };
  }
  const lines = [
    edgeName ? `Destroyed edge ${edgeName} of tunnel ${name}.` : `Tunnel ${name} had no edge at ${providerName}.`,
    hadState ? `Removed local state ${paths.dir}.` : 'There was no local state.',
  ];
  if (reserved)
    lines.push(
      releaseIp
        ? `Released reserved IP ${reserved}.`
        : `Kept reserved IP ${reserved} (innisfree down ${name} --release-ip releases it).`,
    );
  if (reserved6) {
    lines.push(
      releaseIp
        ? `Released reserved IPv6 ${reserved6}.`
        : `Kept reserved IPv6 ${reserved6} (up --reserved-ipv6 ${reserved6} uses it again; innisfree down ${name} ` +
            `--release-ip releases it).`,
    );
  }
  return { output: `${lines.join('\n')}\n` };
}
