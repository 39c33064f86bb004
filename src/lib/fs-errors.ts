// Filesystem failures as the user's problem to fix, not as a bug: one line naming the path and why (a component
// that is no directory, a directory where a file belongs, permissions, a full or read-only disk), exit 9.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { EnvironmentError, InnisfreeError } from './errors.js';

export type FsAction = 'read' | 'write' | 'create' | 'list';

/** Whether `error` came from a filesystem call (it has an errno code such as ENOTDIR). */
export function isFsError(error: unknown): error is NodeJS.ErrnoException {
  return (
    error instanceof Error &&
    !(error instanceof InnisfreeError) &&
    typeof (error as NodeJS.ErrnoException).code === 'string'
  );
}

/** `path` or the first ancestor of it that exists but is not a directory (why ENOTDIR happened), if any. */
export function nonDirectoryAncestor(path: string): string | undefined {
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      if (!statSync(dir).isDirectory()) return dir;
    } catch {
      // Missing: look further up.
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** Why a filesystem call on `path` failed, in words. */
export function fsReason(error: NodeJS.ErrnoException, path: string): string {
  switch (error.code) {
    case 'ENOTDIR': {
      const culprit = nonDirectoryAncestor(path);
      return culprit ? `${culprit} is not a directory` : 'a part of the path is not a directory';
    }
    case 'EISDIR':
      return 'it is a directory';
    case 'EEXIST':
      return 'something that is not a directory is in the way';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'no space left on the device';
    case 'ENOENT':
      return 'it does not exist';
    case 'ELOOP':
      return 'too many symbolic links';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    default:
      return error.code ?? error.message;
  }
}

/**
 * An EnvironmentError for a failed filesystem call on `path`; anything else (a bug) is returned as it is.
 * `hint` says what to do; the default points at the path itself.
 */
export function fsFailure(error: unknown, path: string, action: FsAction, hint?: string): unknown {
  if (!isFsError(error)) return error;
  const reason = fsReason(error, path);
  const culprit = error.code === 'ENOTDIR' ? (nonDirectoryAncestor(path) ?? path) : path;
  return new EnvironmentError(`cannot ${action} ${path}: ${reason}`, {
    hint:
      hint ??
      `fix or move ${culprit} (innisfree keeps its state under INNISFREE_STATE_DIR or $XDG_STATE_HOME/innisfree)`,
    cause: error,
  });
}
