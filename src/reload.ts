// A reload of a running tunnel (SIGHUP, `innisfree reload NAME`): re-read the sources, plan, and apply only the
// difference, with the running configuration as the fallback at every step. In order:
//   1. the new plan must be valid and must not need a new edge or a new home link (else: refused, nothing changes);
//   2. the home side starts the new ports' listeners (or kernel rules) next to the old ones, so a new port answers
//      as soon as the edge sends to it;
//   3. the edge gets the new config through the deployer (magic rollback), only when its config hash changed;
//      a failure or rollback puts the home side and the edge files back, and the old config keeps serving;
//   4. the home side drops the removed ports, after a grace for their open connections.
// Ports that did not change are never touched on either end, so their connections and sessions carry on.
import type { Deployer } from './edge/deployer-port.js';
import type { DeployedConfig } from './edge/deployed-config.js';
import type { EdgeSession } from './edge/edge-session.js';
import { sshTargetFor } from './edge/ssh.js';
import { type HomeDataPlane, linkDifference } from './home/data-plane.js';
import type { Context } from './lib/context.js';
import { InnisfreeError, InterruptedError, RolledBackError, UsageError, formatError } from './lib/errors.js';
import { step } from './lib/events.js';
import type { HomeForward, Plan } from './plan.js';
import type { EdgeInfo } from './providers/provider.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { TunnelPaths } from './state/paths.js';
import type { TunnelStatus } from './state/status.js';

export interface ReloadDeps {
  deployer: Deployer;
  writeEdgeFiles(plan: Plan): Promise<void>;
  restoreEdgeFiles(): Promise<DeployedConfig | undefined>;
}

export interface ServedConfig {
  spec: TunnelSpec;
  config: DeployedConfig;
  /** The edge config hash serving now. */
  configHash: string;
}

export interface ReloadInput {
  deps: ReloadDeps;
  paths: TunnelPaths;
  edge: EdgeInfo;
  session: EdgeSession;
  dataPlane: HomeDataPlane;
  served: ServedConfig;
  replan(): Promise<{ spec: TunnelSpec; plan: Plan }>;
  graceMs: number;
}

export interface ReloadOutcome {
  /** What serves after a successful reload; undefined when it failed (the previous configuration serves). */
  applied: ServedConfig | undefined;
  /** What status.json records of it. */
  status: Partial<TunnelStatus>;
}

/** Spec fields a running tunnel cannot change: they need another edge, another link or another edge address. */
const FIXED_FIELDS = [
  'name',
  'provider',
  'region',
  'size',
  'image',
  'bootstrap',
  'reservedIp',
  'reservedIpv6',
  'ipv6',
  'dns',
  'edgeSshPort',
  'wireguardPort',
  'addressPool',
  'ipv6Pool',
  'keepalive',
  'mtu',
  'homeInterface',
] as const satisfies ReadonlyArray<keyof TunnelSpec>;

/** The spec fields that changed but cannot change on a running tunnel. */
export function fixedFieldChanges(before: TunnelSpec, after: TunnelSpec): string[] {
  return FIXED_FIELDS.filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]));
}

/** The refusal of a reload that changes what a running tunnel cannot change, if it does. */
export function fixedFieldError(before: TunnelSpec, after: TunnelSpec): UsageError | undefined {
  const fixed = fixedFieldChanges(before, after);
  if (fixed.length === 0) return undefined;
  return new UsageError(
    `${fixed.join(', ')} changed, and a running tunnel cannot change ${fixed.length === 1 ? 'it' : 'them'} in place`,
    {
      hint: 'stop up and start it again to apply this (region, size or image make a new edge)',
    },
  );
}

/** "8080/tcp" for each public port of the config. */
function publicPorts(config: DeployedConfig): string[] {
  return config.edge.ports.map((p) => `${p.publicPort}/${p.protocol}`);
}

/** The old forwards plus the new ones whose listen port is free among them (a changed destination waits for step 4). */
function unionOf(before: readonly HomeForward[], after: readonly HomeForward[]): HomeForward[] {
  const listenKey = (f: HomeForward) => `${f.protocol} ${f.listenAddress} ${f.listenPort}`;
  const taken = new Set(before.map(listenKey));
  return [...before, ...after.filter((f) => !taken.has(listenKey(f)))];
}

/**
 * Applies one reload. Never throws for a failed reload (that is an outcome, reported as a `reload-failed` event);
 * only an abort (the tunnel is stopping) ends it early.
 */
export async function reloadTunnel(
  ctx: Pick<Context, 'clock' | 'emit' | 'signal'>,
  input: ReloadInput,
): Promise<ReloadOutcome> {
  const { served, dataPlane, deps } = input;
  const tunnel = served.spec.name;
  const at = () => new Date(ctx.clock.now()).toISOString();
  const failed = (error: unknown, configHash = served.configHash, extra: Partial<TunnelStatus> = {}): ReloadOutcome => {
    if (ctx.signal.aborted) throw ctx.signal.reason ?? new InterruptedError();
    const line = formatError(error);
    ctx.emit({ type: 'reload', tunnel, status: 'reload-failed', configHash, added: [], removed: [], detail: line });
    const kind = error instanceof InnisfreeError ? error.kind : 'internal';
    return {
      applied: undefined,
      status: {
        ...extra,
        lastReload: { at: at(), outcome: 'failed', configHash, added: [], removed: [], message: line, kind },
      },
    };
  };

  let next: { spec: TunnelSpec; plan: Plan };
  try {
    next = await input.replan();
  } catch (error) {
    return failed(error);
  }
  const fixed = fixedFieldError(served.spec, next.spec);
  if (fixed) return failed(fixed);
  const linkChange = linkDifference(served.config.home, next.plan.home);
  if (linkChange) {
    return failed(
      new UsageError(`the new configuration changes ${linkChange}, which a reload cannot change in place`, {
        hint: 'stop up and start it again to apply it',
      }),
    );
  }
  const before = new Set(publicPorts(served.config));
  const after = new Set(publicPorts({ edge: next.plan.edge, home: next.plan.home }));
  const added = [...after].filter((p) => !before.has(p));
  const removed = [...before].filter((p) => !after.has(p));
  const applied: ServedConfig = {
    spec: next.spec,
    config: { edge: next.plan.edge, home: next.plan.home },
    configHash: next.plan.configHash,
  };
  const homeChanged = JSON.stringify(served.config.home) !== JSON.stringify(next.plan.home);
  const edgeChanged = next.plan.configHash !== served.configHash;
  const succeeded = (detail?: string): ReloadOutcome => {
    ctx.emit({
      type: 'reload',
      tunnel,
      status: 'reloaded',
      configHash: applied.configHash,
      added,
      removed,
      ...(detail ? { detail } : {}),
    });
    return {
      applied,
      status: {
        plannedConfigHash: applied.configHash,
        deployedConfigHash: applied.configHash,
        lastReload: {
          at: at(),
          outcome: 'reloaded',
          configHash: applied.configHash,
          added,
          removed,
          message: null,
          kind: null,
        },
      },
    };
  };
  if (!homeChanged && !edgeChanged) return succeeded('nothing changed');

  // 2. New listeners next to the old ones.
  const restoreHome = () => dataPlane.updateForwards(served.config.home, 0).catch(() => {});
  try {
    await dataPlane.updateForwards(
      { ...next.plan.home, forwards: unionOf(served.config.home.forwards, next.plan.home.forwards) },
      0,
    );
  } catch (error) {
    await restoreHome();
    return failed(error);
  }

  // 3. The edge, through the same deployer as up; the files (home.json too) describe the new config from here on.
  try {
    await deps.writeEdgeFiles(next.plan);
  } catch (error) {
    await deps.restoreEdgeFiles().catch(() => undefined);
    await restoreHome();
    return failed(error);
  }
  if (edgeChanged) {
    try {
      await step(
        ctx.emit,
        'reload.deploy',
        `Deploying the reloaded edge configuration (${next.plan.configHash.slice(0, 12)})`,
        () =>
          deps.deployer.apply({
            tunnel,
            edgeDir: input.paths.edgeDir,
            configHash: next.plan.configHash,
            target: sshTargetFor(input.paths, input.edge.ipv4, served.spec.edgeSshPort),
            emit: ctx.emit,
            signal: ctx.signal,
          }),
      );
    } catch (error) {
      // The files on disk and the home side go back to what the edge serves; the edge itself says what that is.
      await deps.restoreEdgeFiles().catch(() => undefined);
      await restoreHome();
      const reported = (await input.session.status().catch(() => undefined))?.configHash ?? null;
      if (error instanceof RolledBackError) {
        const serving =
          reported === served.configHash
            ? 'the previous configuration keeps serving'
            : `the edge reports config ${reported?.slice(0, 12) ?? 'none'}`;
        return failed(
          new RolledBackError(
            `the edge rolled back the new configuration (${withoutClaim(error.message)}); ${serving}`,
            { ...(error.hint ? { hint: error.hint } : {}), cause: error },
          ),
          served.configHash,
          { deployedConfigHash: reported },
        );
      }
      return failed(error, served.configHash, { deployedConfigHash: reported });
    }
  }

  // 4. The removed ports go, after their grace; a changed destination switches now.
  try {
    await dataPlane.updateForwards(next.plan.home, input.graceMs);
  } catch (error) {
    // The edge serves the new config; the home side still carries the union, which includes all of it.
    ctx.emit({
      type: 'log',
      level: 'warn',
      message: `reload: the home side kept ports it should have dropped: ${formatError(error)}`,
    });
  }
  return succeeded();
}

function withoutClaim(message: string): string {
  return message.replace(/[;,]?\s*(and )?the previous configuration is still serving/g, '');
}
