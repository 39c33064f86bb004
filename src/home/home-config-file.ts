// home.json: the home-side plan (HomeConfig) of a tunnel's last `up`, kept in its state directory so `proxy NAME`
// (and anything else that runs the home side separately) uses exactly what `up` planned.
import { UsageError } from '../lib/errors.js';
import { HomeConfig } from '../spec/home-config.js';
import { readTextIfExists, writeJsonAtomic } from '../state/files.js';
import type { TunnelPaths } from '../state/paths.js';

/** The tunnel's home plan, or undefined when `up` has not written one. A damaged file is a usage error. */
export async function readHomeConfig(paths: TunnelPaths): Promise<HomeConfig | undefined> {
  const text = await readTextIfExists(paths.home);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const parsed = HomeConfig.safeParse(value);
  if (!parsed.success) {
    throw new UsageError(`${paths.home} is damaged`, { hint: 'run innisfree up again to rewrite it' });
  }
  return parsed.data;
}

export async function writeHomeConfig(paths: TunnelPaths, home: HomeConfig): Promise<void> {
  await writeJsonAtomic(paths.home, home);
}
