// Atomic file writes: a temporary file in the same directory, fsync, then rename, so a crash never leaves a torn
// file behind. Secrets are created 0600 from the start (never chmod-ed after being readable).
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsFailure, fsReason, isFsError } from '../lib/fs-errors.js';

export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

export async function writeFileAtomic(path: string, content: string, mode: number = PUBLIC_MODE): Promise<void> {
  const dir = dirname(path);
  await ensureDir(dir);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(content);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => {});
    throw fsFailure(error, path, 'write');
  }
}

/** mkdir -p with mode 0700 for what it creates; a file in the way is an EnvironmentError naming it. */
export async function ensureDir(dir: string, hint?: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw fsFailure(error, dir, 'create', hint);
  }
}

export async function writeJsonAtomic(path: string, value: unknown, mode: number = PUBLIC_MODE): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** The file's text, or undefined when it does not exist; any other failure is an EnvironmentError naming it. */
export async function readTextIfExists(path: string, hint?: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsFailure(error, path, 'read', hint);
  }
}

/** Files a user names (a tunnel file, config.json) are read up to this size; anything larger is not one. */
export const MAX_INPUT_FILE_BYTES = 1024 * 1024;

export type InputFileProblem = 'missing' | 'not-regular' | 'too-large' | 'unreadable';

/** What is wrong with a named file, for the caller to word: which kind it is, how large, the errno code. */
export interface InputFileFacts {
  kind?: string;
  size?: number;
  code?: string;
}

export class InputFileError extends Error {
  constructor(
    readonly problem: InputFileProblem,
    readonly reason: string,
    readonly facts: InputFileFacts = {},
  ) {
    super(reason);
  }
}

/** A named file's text and its permission bits (a secret's reader warns when every user may read it). */
export interface InputFile {
  text: string;
  mode: number;
}

/**
 * A small regular file's text, or undefined when it does not exist. Opened non-blocking, so a FIFO without a
 * writer cannot hang the process (nor keep a signal from ending it), then checked through the open handle: a
 * FIFO, a device (/dev/zero), a directory or a file over `maxBytes` is refused before anything is read.
 */
export async function readInputFile(path: string, maxBytes = MAX_INPUT_FILE_BYTES): Promise<string | undefined> {
  return (await readInputFileAndMode(path, maxBytes))?.text;
}

/** readInputFile, with the file's mode as the handle saw it. */
export async function readInputFileAndMode(
  path: string,
  maxBytes = MAX_INPUT_FILE_BYTES,
): Promise<InputFile | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (!isFsError(error)) throw error;
    throw new InputFileError('unreadable', fsReason(error, path), { code: error.code });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      const kind = stat.isDirectory()
        ? 'a directory'
        : stat.isFIFO()
          ? 'a FIFO'
          : stat.isCharacterDevice() || stat.isBlockDevice()
            ? 'a device'
            : stat.isSocket()
              ? 'a socket'
              : 'not a regular file';
      throw new InputFileError('not-regular', `it is ${kind}, not a regular file`, { kind });
    }
    if (stat.size > maxBytes) {
      throw new InputFileError(
        'too-large',
        `it is ${stat.size} bytes, more than the ${maxBytes} a settings file may have`,
        { size: stat.size },
      );
    }
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      // Grew while read: still no settings file.
      if (length > maxBytes)
        throw new InputFileError('too-large', `it is more than the ${maxBytes} bytes a settings file may have`);
    }
    return { text: buffer.subarray(0, length).toString('utf8'), mode: stat.mode };
  } catch (error) {
    if (error instanceof InputFileError || !isFsError(error)) throw error;
    throw new InputFileError('unreadable', fsReason(error, path), { code: error.code });
  } finally {
    await handle.close();
  }
}
