// The per-tunnel edge flake: a tiny flake.nix in the tunnel's edge/ state directory, next to edge.json, whose only
// input is the innisfree flake itself. deploy-rs and nixos-anywhere run on it (see the template for the output
// names). Rendering is pure; writing it is the caller's business.
import ejs from 'ejs';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Env } from '../lib/context.js';
import { EnvironmentError, UsageError } from '../lib/errors.js';
import { packageRoot } from '../lib/package-root.js';
import { TunnelName, isHostname } from '../spec/primitives.js';

export const EDGE_FLAKE_TEMPLATE = join(packageRoot, 'src', 'templates', 'flake.nix.ejs');

export interface EdgeFlakeInput {
  /** Absolute path of the innisfree flake (see innisfreeFlakePath). */
  innisfreeFlake: string;
  /** The tunnel's name. */
  tunnel: string;
  /**
   * Where deploy-rs reaches the edge: its public IPv4 address or a DNS name. Optional: without it the node's
   * hostname is "innisfree-<tunnel>.invalid" (unresolvable on purpose) and the deployer passes --hostname.
   */
  hostname?: string;
  /** sha256 of edge.json, recorded in the header; the flake computes the hash the edge reports itself. */
  configHash?: string;
}

/**
 * The innisfree flake the edge flakes take as their input: INNISFREE_FLAKE (the Nix package's wrapper sets it to
 * the flake's own store path), else this package's root (a source checkout).
 */
export function innisfreeFlakePath(env: Env): string {
  return env.INNISFREE_FLAKE || packageRoot;
}

// Characters that keep a path usable inside a Nix string and a `path:` flake reference.
const FLAKE_PATH = /^\/[A-Za-z0-9._+\-/]*$/;

export function renderEdgeFlake(input: EdgeFlakeInput, template = readFileSync(EDGE_FLAKE_TEMPLATE, 'utf8')): string {
  if (!FLAKE_PATH.test(input.innisfreeFlake) || input.innisfreeFlake.includes('..')) {
    throw new EnvironmentError(`the innisfree flake path "${input.innisfreeFlake}" cannot be used as a flake input`, {
      hint:
        'set INNISFREE_FLAKE to an absolute path made of letters, digits and ._+-/ (e.g. a copy of the repository ' +
        'without spaces)',
    });
  }
  if (!TunnelName.safeParse(input.tunnel).success) {
    throw new UsageError(`"${input.tunnel}" is not a tunnel name`, { hint: 'use a-z, 0-9 and "-", e.g. web' });
  }
  const hostname = input.hostname ?? `innisfree-${input.tunnel}.invalid`;
  if (!(isIP(hostname) === 4 || (isIP(hostname) === 0 && isHostname(hostname)))) {
    throw new UsageError(`"${hostname}" is not an IPv4 address or host name for the edge`, {
      hint: "use the edge's public IPv4 address",
    });
  }
  if (input.configHash !== undefined && !/^[0-9a-f]{64}$/.test(input.configHash)) {
    throw new UsageError('the edge config hash must be 64 hex digits (sha256 of edge.json)');
  }
  return ejs.render(template, {
    innisfreeFlake: input.innisfreeFlake,
    tunnel: input.tunnel,
    hostname,
    configHash: input.configHash ?? '',
  });
}
