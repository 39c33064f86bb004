// Reads the file-based sources (a --file tunnel file and config.json defaults) and resolves the TunnelSpec.
import { basename } from 'node:path';
import type { Env } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { InputFileError, readInputFile } from '../state/files.js';
import { configFile } from '../state/paths.js';
import { type Layer, envLayer, fileLayer, flagLayer, resolveTunnelSpec, tokenFileOf } from './sources.js';
import { PROVIDER_TRAITS, type TunnelSpec } from './tunnel.js';

export interface LoadedSpec {
  spec: TunnelSpec;
  /** tokenFile from the flags or the defaults in config.json, if any. */
  tokenFile: string | undefined;
}

/**
 * A JSON settings file (a tunnel file or config.json), or undefined when it does not exist. Only a regular file of
 * sane size is read; a FIFO, a device, a directory or an unreadable file is one UsageError saying which and why.
 */
export async function readJsonFile(path: string, label: string, fixHint?: string): Promise<unknown | undefined> {
  let text: string | undefined;
  try {
    text = await readInputFile(path);
  } catch (error) {
    if (!(error instanceof InputFileError)) throw error;
    throw new UsageError(`${label === path ? path : `${label} ${path}`}: ${error.reason}`, {
      hint:
        fixHint ??
        (error.problem === 'unreadable'
          ? `make ${path} readable, or give another tunnel file`
          : 'give the path of a tunnel JSON file (a regular file)'),
    });
  }
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
  const data = await readJsonFile(
    path,
    path,
    `${path} holds the defaults for every tunnel: make it a readable JSON file, or remove it`,
  );
  return { layer: data === undefined ? undefined : { ...fileLayer(path, data), defaults: true }, data };
}

export async function loadTunnelSpec(flags: Record<string, unknown>, env: Env): Promise<LoadedSpec> {
  const layers: Layer[] = [flagLayer(flags), envLayer(env)];
  const fileFlag = flags.file !== undefined ? '--file' : 'INNISFREE_FILE';
  const file = flags.file !== undefined ? flags.file : env.INNISFREE_FILE;
  if (Array.isArray(file)) throw new UsageError('--file is given more than once', { hint: 'give one tunnel file' });
  if (file !== undefined && (typeof file !== 'string' || file.trim() === '')) {
    throw new UsageError(`${fileFlag}: needs the path of a tunnel JSON file, got an empty value`, {
      hint: `write ${fileFlag === '--file' ? '--file PATH' : 'INNISFREE_FILE=PATH'}, or leave it out`,
    });
  }
  let fileData: unknown;
  if (file !== undefined) {
    fileData = await readJsonFile(file, fileFlag);
    if (fileData === undefined)
      throw new UsageError(`${fileFlag}: ${file} does not exist`, { hint: 'give the path of a tunnel JSON file' });
    layers.push(fileLayer(basename(file), fileData));
  }
  const defaults = await loadDefaults(env);
  if (defaults.layer) layers.push(defaults.layer);
  const spec = resolveTunnelSpec(layers);
  if (!PROVIDER_TRAITS[spec.provider].apiToken && flags.tokenFile !== undefined) {
    throw new UsageError(`--token-file: only the digitalocean provider uses an API token`, {
      hint: `drop --token-file when using --provider ${spec.provider}`,
    });
  }
  // A tunnel file may name its token file too (below the flag and INNISFREE_TOKEN_FILE, above config.json).
  return { spec, tokenFile: pickTokenFile(flags, env, fileData, defaults.data) };
}

/** The token file for commands that take no tunnel spec: --token-file, else INNISFREE_TOKEN_FILE, else config.json. */
export async function tokenFileFrom(flags: Record<string, unknown>, env: Env): Promise<string | undefined> {
  return pickTokenFile(flags, env, (await loadDefaults(env)).data);
}

function pickTokenFile(flags: Record<string, unknown>, env: Env, ...files: unknown[]): string | undefined {
  if (flags.tokenFile !== undefined) {
    if (typeof flags.tokenFile !== 'string' || flags.tokenFile.trim() === '') {
      throw new UsageError('--token-file: needs the path of a file holding the API token', {
        hint: 'write --token-file PATH, or leave it out',
      });
    }
    return flags.tokenFile;
  }
  if (env.INNISFREE_TOKEN_FILE !== undefined) {
    if (env.INNISFREE_TOKEN_FILE.trim() === '') {
      throw new UsageError('INNISFREE_TOKEN_FILE is set but empty', {
        hint: 'give it the path of the token file, or unset it (unset INNISFREE_TOKEN_FILE)',
      });
    }
    return env.INNISFREE_TOKEN_FILE;
  }
  for (const data of files) {
    const path = tokenFileOf(data);
    if (path !== undefined) return path;
  }
  return undefined;
}
