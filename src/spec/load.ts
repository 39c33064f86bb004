// Reads the file-based sources (a --file tunnel file and config.json defaults) and resolves the TunnelSpec.
import { basename } from 'node:path';
import type { Env } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { readTextIfExists } from '../state/files.js';
import { configFile } from '../state/paths.js';
import { type Layer, envLayer, fileLayer, flagLayer, resolveTunnelSpec, tokenFileOf } from './sources.js';
import type { TunnelSpec } from './tunnel.js';

export interface LoadedSpec {
  spec: TunnelSpec;
  /** tokenFile from the flags or the defaults in config.json, if any. */
  tokenFile: string | undefined;
}

export async function readJsonFile(path: string, label: string): Promise<unknown | undefined> {
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${label}: not valid JSON (${(error as Error).message})`, { hint: `fix or remove ${path}` });
  }
}

/** The config.json defaults layer, if the file exists. */
export async function loadDefaults(env: Env): Promise<{ layer: Layer | undefined; data: unknown }> {
  const path = configFile(env);
  const data = await readJsonFile(path, path);
  return { layer: data === undefined ? undefined : fileLayer(path, data), data };
}

export async function loadTunnelSpec(flags: Record<string, unknown>, env: Env): Promise<LoadedSpec> {
  const layers: Layer[] = [flagLayer(flags), envLayer(env)];
  const file = typeof flags.file === 'string' ? flags.file : env.INNISFREE_FILE;
  if (file) {
    const data = await readJsonFile(file, basename(file));
    if (data === undefined) throw new UsageError(`--file: ${file} does not exist`, { hint: 'give the path of a tunnel JSON file' });
    layers.push(fileLayer(basename(file), data));
  }
  const defaults = await loadDefaults(env);
  if (defaults.layer) layers.push(defaults.layer);
  return { spec: resolveTunnelSpec(layers), tokenFile: pickTokenFile(flags, env, defaults.data) };
}

/** The token file for commands that take no tunnel spec: --token-file, else INNISFREE_TOKEN_FILE, else config.json. */
export async function tokenFileFrom(flags: Record<string, unknown>, env: Env): Promise<string | undefined> {
  return pickTokenFile(flags, env, (await loadDefaults(env)).data);
}

function pickTokenFile(flags: Record<string, unknown>, env: Env, defaults: unknown): string | undefined {
  if (typeof flags.tokenFile === 'string' && flags.tokenFile !== '') return flags.tokenFile;
  if (env.INNISFREE_TOKEN_FILE) return env.INNISFREE_TOKEN_FILE;
  return tokenFileOf(defaults);
}
