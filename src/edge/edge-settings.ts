// What every edge shares, NixOS or local: the sshd hardening and the names of the variables innisfree-edge-status
// (nix/edge-status.sh) reads. One data file, nix/edge-settings.json, holds them; modules/edge.nix and
// nix/edge/digitalocean.nix read it with lib.importJSON, the local edge reads it here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { packageRoot } from '../lib/package-root.js';

const EdgeSettingsFile = z
  .object({
    /** services.openssh.settings on a NixOS edge; the same keywords in the local edge's sshd_config. */
    sshdHardening: z.record(z.string(), z.union([z.string(), z.boolean()])),
    statusEnvironment: z
      .object({
        name: z.string(),
        interface: z.string(),
        forwarding: z.string(),
        hashFile: z.string(),
        forwarderCheck: z.string(),
      })
      .strict(),
  })
  .strict();

export type EdgeStatusVariable = keyof z.infer<typeof EdgeSettingsFile>['statusEnvironment'];

export const EDGE_SETTINGS_FILE = join(packageRoot, 'nix', 'edge-settings.json');

const settings = EdgeSettingsFile.parse(JSON.parse(readFileSync(EDGE_SETTINGS_FILE, 'utf8')));

/** The environment variable innisfree-edge-status reads each setting from (INNISFREE_EDGE_NAME, …). */
export const EDGE_STATUS_ENV: Readonly<Record<EdgeStatusVariable, string>> = settings.statusEnvironment;

/** The sshd hardening as sshd_config lines: booleans as yes/no, as NixOS renders services.openssh.settings. */
export function sshdHardeningLines(): string[] {
  return Object.entries(settings.sshdHardening).map(
    ([keyword, value]) => `${keyword} ${typeof value === 'boolean' ? (value ? 'yes' : 'no') : value}`,
  );
}
