// Where the DigitalOcean API token comes from. A token file (--token-file, INNISFREE_TOKEN_FILE or tokenFile in
// config.json) wins when one is named; otherwise DIGITALOCEAN_TOKEN, then DIGITALOCEAN_ACCESS_TOKEN. The token is
// returned to the client and nowhere else: never logged, never put in an error message or a child's argv.
import type { Context } from '../../lib/context.js';
import { UsageError } from '../../lib/errors.js';
import { type InputFile, InputFileError, readInputFileAndMode } from '../../state/files.js';

export const TOKEN_SOURCES_HINT =
  'set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN), pass --token-file FILE, or put "tokenFile" in ' +
  '$XDG_CONFIG_HOME/innisfree/config.json; to try innisfree without an account use --provider local';

/** The environment variables that may hold the API token, in the order they are read. */
export const TOKEN_ENV_NAMES = ['DIGITALOCEAN_TOKEN', 'DIGITALOCEAN_ACCESS_TOKEN'] as const;

export async function resolveToken(ctx: Pick<Context, 'env' | 'emit'>, tokenFile: string | undefined): Promise<string> {
  if (tokenFile) {
    const token = (await readTokenFile(ctx, tokenFile)).trim();
    if (!token) throw new UsageError(`token file ${tokenFile} is empty`, { hint: TOKEN_SOURCES_HINT });
    checkShape(token, `token file ${tokenFile}`);
    return token;
  }
  const { env } = ctx;
  for (const name of TOKEN_ENV_NAMES) {
    const token = env[name]?.trim();
    if (token) {
      checkShape(token, name);
      return token;
    }
  }
  throw new UsageError('no DigitalOcean API token', { hint: TOKEN_SOURCES_HINT });
}

/** A token file is small; anything larger is the wrong file. */
const MAX_TOKEN_FILE_BYTES = 64 * 1024;

/**
 * The token file's text, read as every named file is (state/files.ts): only a small regular file, so a FIFO cannot
 * hang the read nor /dev/zero fill memory. One every user may read is used with a warning, as ssh warns about a
 * key file: the token controls the whole account.
 */
async function readTokenFile(ctx: Pick<Context, 'emit'>, tokenFile: string): Promise<string> {
  let file: InputFile | undefined;
  try {
    file = await readInputFileAndMode(tokenFile, MAX_TOKEN_FILE_BYTES);
  } catch (error) {
    if (!(error instanceof InputFileError)) throw error;
    if (error.problem === 'not-regular') {
      throw new UsageError(`token file ${tokenFile} is ${error.facts.kind}, not a regular file`, {
        hint: 'point --token-file (or tokenFile) at a file holding the API token',
      });
    }
    if (error.problem === 'too-large') {
      const size = error.facts.size === undefined ? `more than ${MAX_TOKEN_FILE_BYTES}` : String(error.facts.size);
      throw new UsageError(`token file ${tokenFile} is ${size} bytes, too large for an API token`, {
        hint: 'point --token-file (or tokenFile) at a file holding only the API token',
      });
    }
    throw new UsageError(`token file ${tokenFile} cannot be read (${error.facts.code ?? 'error'})`, {
      hint: TOKEN_SOURCES_HINT,
    });
  }
  if (file === undefined) {
    throw new UsageError(`token file ${tokenFile} cannot be read (it does not exist)`, { hint: TOKEN_SOURCES_HINT });
  }
  if ((file.mode & 0o007) !== 0) {
    const octal = (file.mode & 0o777).toString(8).padStart(4, '0');
    ctx.emit({
      type: 'log',
      level: 'warn',
      message:
        `token file ${tokenFile} is open to every user on this machine (mode ${octal}); ` +
        `anyone who reads it controls the DigitalOcean account: chmod 600 ${tokenFile}`,
    });
  }
  return file.text;
}

/** A token goes into an HTTP header: refuse anything that could break out of it (and say where, not what). */
function checkShape(token: string, source: string): void {
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError(`${source} does not hold a single-line API token`, {
      hint: 'the token is one line of printable characters (dop_v1_…); fix the value',
    });
  }
}
