// Where the DigitalOcean API token comes from. A token file (--token-file, INNISFREE_TOKEN_FILE or tokenFile in
// config.json) wins when one is named; otherwise DIGITALOCEAN_TOKEN, then DIGITALOCEAN_ACCESS_TOKEN. The token is
// returned to the client and nowhere else: never logged, never put in an error message or a child's argv.
import { readFile } from 'node:fs/promises';
import type { Env } from '../../lib/context.js';
import { UsageError } from '../../lib/errors.js';

export const TOKEN_SOURCES_HINT =
  'set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN), pass --token-file FILE, or put "tokenFile" in ' +
  '$XDG_CONFIG_HOME/innisfree/config.json; to try innisfree without an account use --provider local';

/** The environment variables that may hold the API token, in the order they are read. */
export const TOKEN_ENV_NAMES = ['DIGITALOCEAN_TOKEN', 'DIGITALOCEAN_ACCESS_TOKEN'] as const;

export async function resolveToken(env: Env, tokenFile: string | undefined): Promise<string> {
  if (tokenFile) {
    let text: string;
    try {
      text = await readFile(tokenFile, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(
        `token file ${tokenFile} cannot be read (${code === 'ENOENT' ? 'it does not exist' : (code ?? 'error')})`,
        {
          hint: TOKEN_SOURCES_HINT,
        },
      );
    }
    const token = text.trim();
    if (!token) throw new UsageError(`token file ${tokenFile} is empty`, { hint: TOKEN_SOURCES_HINT });
    checkShape(token, `token file ${tokenFile}`);
    return token;
  }
  for (const name of TOKEN_ENV_NAMES) {
    const token = env[name]?.trim();
    if (token) {
      checkShape(token, name);
      return token;
    }
  }
  throw new UsageError('no DigitalOcean API token', { hint: TOKEN_SOURCES_HINT });
}

/** A token goes into an HTTP header: refuse anything that could break out of it (and say where, not what). */
function checkShape(token: string, source: string): void {
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(`${source} does not hold a single-line API token`, {
      hint: 'the token is one line of printable characters (dop_v1_…); fix the value',
    });
  }
}
