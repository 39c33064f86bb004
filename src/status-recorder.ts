// status.json while a tunnel runs: the one writer of the run's phase, edge, config hashes and data-plane samples.
import type { HomeDataPlane } from './home/data-plane.js';
import type { Plan } from './plan.js';
import type { RunTunnelContext } from './run-tunnel-context.js';
import type { TunnelSpec } from './spec/tunnel.js';
import type { TunnelPaths } from './state/paths.js';
import { type Phase, type TunnelStatus, writeStatus } from './state/status.js';

/** Keeps status.json current; every update is a whole, atomic write. */
export class StatusRecorder {
  private current: TunnelStatus;

  constructor(
    private readonly paths: TunnelPaths,
    spec: TunnelSpec,
    plan: Plan,
    private readonly clock: RunTunnelContext['clock'],
  ) {
    this.current = {
      version: 1,
      name: spec.name,
      phase: 'planned',
      pid: process.pid,
      provider: spec.provider,
      updatedAt: new Date(clock.now()).toISOString(),
      edge: null,
      plannedConfigHash: plan.configHash,
      deployedConfigHash: null,
      message: null,
      dataPlane: null,
    };
  }

  async update(change: Partial<Omit<TunnelStatus, 'version' | 'name'>> & { phase?: Phase }): Promise<void> {
    this.current = { ...this.current, ...change, updatedAt: new Date(this.clock.now()).toISOString() };
    await writeStatus(this.paths, this.current);
  }
}

export async function sampleFor(
  dataPlane: HomeDataPlane,
  clock: RunTunnelContext['clock'],
): Promise<NonNullable<TunnelStatus['dataPlane']>> {
  const sample = await dataPlane.sample();
  return { ...sample, sampledAt: new Date(clock.now()).toISOString() };
}
