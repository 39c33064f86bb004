// Finding programs the way a shell would, plus the sbin directories a non-root PATH often lacks.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import type { Env } from './context.js';

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export async function findExecutable(name: string, env: Env): Promise<string | undefined> {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
