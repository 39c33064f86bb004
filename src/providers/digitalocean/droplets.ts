// Droplets: find by tag, create, wait until active with addresses, wait for pending actions, delete and wait
// until gone.
import type { Clock } from '../../lib/context.js';
import { ProviderError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import type { DigitalOceanClient } from './client.js';
import { listAll } from './pagination.js';
import { Action, ActionEnvelope, Droplet, DropletEnvelope } from './schemas.js';
import { type Timing, pollDelay } from './timing.js';

export function dropletsByTag(client: DigitalOceanClient, tag: string): Promise<Droplet[]> {
  return listAll(client, '/v2/droplets', 'droplets', Droplet, { tag_name: tag });
}

export async function getDroplet(client: DigitalOceanClient, id: number): Promise<Droplet | undefined> {
  return (await client.find(`/v2/droplets/${id}`, DropletEnvelope))?.droplet;
}

export function publicIpv4(droplet: Droplet): string | undefined {
  return droplet.networks.v4.find((n) => n.type === 'public')?.ip_address;
}

export function publicIpv6(droplet: Droplet): string | undefined {
  return droplet.networks.v6.find((n) => n.type === 'public')?.ip_address;
}

export function hasIpv6Feature(droplet: Droplet): boolean {
  return droplet.features.includes('ipv6') || publicIpv6(droplet) !== undefined;
}

export interface WaitOptions {
  timing: Timing;
  clock: Clock;
  emit: Emit;
}

export interface WaitActiveOptions extends WaitOptions {
  /** Wait for a public IPv6 too (only when the droplet has the ipv6 feature). */
  ipv6: boolean;
  /** The droplet as last seen; checked before the first wait. */
  current?: Droplet;
  /** True right after a create: 404s are expected for a while. */
  justCreated: boolean;
  /** Told how far the wait is (elapsed time, droplet status) on every status change and every progressEveryMs. */
  progress?: (detail: string) => void;
}

/** How often a long wait reports progress when nothing changes. */
export const PROGRESS_EVERY_MS = 10_000;

/**
 * Polls until the droplet is active, unlocked and has its public IPv4 (and IPv6 when asked and possible). Polls
 * every 2 s rising to 5 s; tolerates 404 during the grace period after a create.
 */
export async function waitActive(
  phaseClient: DigitalOceanClient,
  id: number,
  options: WaitActiveOptions,
): Promise<Droplet> {
  const { timing, clock, emit } = options;
  const started = clock.now();
  // Polls wait out rate limits inside the activation budget, not a fixed number of tries.
  const client = phaseClient.until(started + timing.activeTimeoutMs);
  let droplet = options.current;
  let lastStatus = droplet?.status;
  let reportedAt = started;
  const report = (force: boolean): void => {
    const now = clock.now();
    if (!options.progress || (!force && now - reportedAt < PROGRESS_EVERY_MS)) return;
    reportedAt = now;
    options.progress(`${Math.round((now - started) / 1000)} s, droplet ${droplet?.status ?? 'not visible yet'}`);
  };
  for (let poll = 0; ; poll++) {
    if (droplet) {
      if (isReady(droplet, options.ipv6)) return droplet;
      if (droplet.status === 'off' || droplet.status === 'archive') {
        throw new ProviderError(`droplet ${droplet.name} (${id}) is ${droplet.status}`, {
          hint:
            `power it on in the DigitalOcean control panel, or remove it with innisfree down ` +
            `${tunnelOf(droplet) ?? 'NAME'}`,
        });
      }
    }
    const elapsed = clock.now() - started;
    if (elapsed >= timing.activeTimeoutMs) {
      throw new ProviderError(
        `droplet ${id} did not become active with its addresses within ` +
          `${Math.round(timing.activeTimeoutMs / 1000)} s (last status: ${droplet?.status ?? 'not visible yet'})`,
        { hint: 'DigitalOcean may be slow in this region; run the command again, or pick another --region' },
      );
    }
    await client.sleep(pollDelay(timing, poll));
    const seen = await getDroplet(client, id);
    if (!seen) {
      if (!options.justCreated || clock.now() - started > timing.notFoundGraceMs) {
        throw new ProviderError(`droplet ${id} disappeared while innisfree waited for it`, {
          hint:
            'DigitalOcean removes a droplet it could not place or whose user_data it rejected; run the command ' +
            'again, or pick another --region',
        });
      }
      emit({ type: 'log', level: 'debug', message: `droplet ${id} is not visible yet (404), waiting` });
      continue;
    }
    droplet = seen;
    if (droplet.status !== lastStatus) {
      lastStatus = droplet.status;
      emit({ type: 'log', level: 'info', message: `droplet ${droplet.name} (${id}) is ${droplet.status}` });
      report(true);
    } else {
      report(false);
    }
  }
}

function isReady(droplet: Droplet, ipv6: boolean): boolean {
  if (droplet.status !== 'active' || droplet.locked === true || !publicIpv4(droplet)) return false;
  return !ipv6 || !hasIpv6Feature(droplet) || publicIpv6(droplet) !== undefined;
}

export function tunnelOf(droplet: Pick<Droplet, 'tags'>): string | undefined {
  const tag = droplet.tags.find((t) => t.startsWith('innisfree:'));
  return tag?.slice('innisfree:'.length);
}

/** Waits until the droplet has no in-progress action (a reserved-IP assign would fail with "pending event"). */
export async function waitNoPendingActions(
  phaseClient: DigitalOceanClient,
  id: number,
  options: WaitOptions,
): Promise<void> {
  const { timing, clock } = options;
  const started = clock.now();
  const client = phaseClient.until(started + timing.actionTimeoutMs);
  for (let poll = 0; ; poll++) {
    const actions = await listAll(client, `/v2/droplets/${id}/actions`, 'actions', Action);
    const pending = actions.filter((a) => a.status === 'in-progress');
    if (pending.length === 0) return;
    if (clock.now() - started >= timing.actionTimeoutMs) {
      throw new ProviderError(
        `droplet ${id} still has a pending ${pending[0]!.type ?? 'action'} after ` +
          `${Math.round(timing.actionTimeoutMs / 1000)} s`,
        {
          hint:
            'wait until DigitalOcean finishes it (see the droplet in the control panel), then run the ' +
            'command again',
        },
      );
    }
    options.emit({
      type: 'log',
      level: 'debug',
      message: `droplet ${id}: waiting for ${pending.map((a) => a.type ?? a.id).join(', ')}`,
    });
    await client.sleep(pollDelay(timing, poll));
  }
}

/** Polls an action (by its own URL) until it completes; errored actions and timeouts throw. */
export async function waitAction(
  phaseClient: DigitalOceanClient,
  path: string,
  what: string,
  options: WaitOptions,
): Promise<Action | undefined> {
  const { timing, clock } = options;
  const started = clock.now();
  const client = phaseClient.until(started + timing.actionTimeoutMs);
  for (let poll = 0; ; poll++) {
    const action = (await client.find(path, ActionEnvelope))?.action;
    if (!action) return undefined;
    if (action.status === 'completed') return action;
    if (action.status === 'errored') {
      throw new ProviderError(`DigitalOcean could not ${what} (action ${action.id} errored)`, {
        hint: 'see the action in the DigitalOcean control panel, then run the command again',
      });
    }
    if (clock.now() - started >= timing.actionTimeoutMs) {
      throw new ProviderError(`DigitalOcean did not ${what} within ${Math.round(timing.actionTimeoutMs / 1000)} s`, {
        hint: 'run the command again later',
      });
    }
    await client.sleep(pollDelay(timing, poll));
  }
}

/**
 * Deletes the droplet and waits until it is gone; a droplet that is already gone is fine. Once DigitalOcean
 * accepted the DELETE (204) the droplet is going: a poll that cannot confirm it (rate limits past the budget) is
 * reported as exactly that, never as "could not destroy".
 */
export async function destroyDroplet(
  phaseClient: DigitalOceanClient,
  id: number,
  options: WaitOptions,
): Promise<boolean> {
  const { timing, clock, emit } = options;
  const started = clock.now();
  const client = phaseClient.until(started + timing.deleteTimeoutMs);
  const deleted = await client.delete(`/v2/droplets/${id}`, { missingOk: true });
  for (let poll = 0; ; poll++) {
    let seen: Droplet | undefined;
    try {
      seen = await getDroplet(client, id);
    } catch (error) {
      if (!(error instanceof ProviderError) || isInterrupt(error)) throw error;
      emit({
        type: 'log',
        level: 'warn',
        message:
          `DigitalOcean accepted the delete of droplet ${id}, but innisfree could not confirm it is gone (` +
          `${error.message}); innisfree list shows it if it stays`,
      });
      return deleted;
    }
    if (!seen) return deleted;
    if (clock.now() - started >= timing.deleteTimeoutMs) {
      throw new ProviderError(
        `droplet ${id} was still there ${Math.round(timing.deleteTimeoutMs / 1000)} s after DigitalOcean ` +
          `accepted its delete`,
        {
          hint: 'DigitalOcean may be slow; run the command again to check, or delete it in the control panel',
        },
      );
    }
    await client.sleep(pollDelay(timing, poll));
  }
}

function isInterrupt(error: unknown): boolean {
  return (error as { exitCode?: number }).exitCode === 130;
}
