// The deployer port: how an EdgeConfig becomes the running configuration of an edge. Adapters: deploy-rs with
// magic rollback (real edges), and the local provider's deployer (applies the Nix-rendered config directly in the
// edge namespace, with the same rollback semantics).
import type { Emit } from '../lib/events.js';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  /** The tunnel's SSH private key file (0600). */
  privateKeyPath: string;
  /** The tunnel's pinned known_hosts file. */
  knownHostsPath: string;
}

export interface DeployRequest {
  tunnel: string;
  /** The tunnel's edge/ state directory: flake.nix and edge.json, already rendered. */
  edgeDir: string;
  /** sha256 of edge.json; the edge reports it once the config is active. */
  configHash: string;
  target: SshTarget;
  emit: Emit;
  signal: AbortSignal;
}

export interface DeployResult {
  /** The config hash now serving on the edge. */
  configHash: string;
}

export interface Deployer {
  /**
   * Activates the config. Resolves once the edge serves it (and the deployment was confirmed). Throws
   * RolledBackError when the edge rolled back to its previous configuration (which keeps serving), DeployError
   * for any other failure.
   */
  apply(request: DeployRequest): Promise<DeployResult>;
}
