// innisfree check --file FILE: is this tunnel file one `up --file` would accept? The same loading and validation as
// up (the file, INNISFREE_* variables, config.json defaults), and nothing else: no network, no state directory, no
// token, no root. The home module runs it when the system is built, so a bad tunnel fails the build, not the boot.
import { basename } from 'node:path';
import type { CommandOutcome } from '../lib/command.js';
import type { Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { loadTunnelSpec } from '../spec/load.js';
import { formatPortRange } from '../spec/ports.js';

export interface CheckOptions {
  file: unknown;
}

export async function checkCommand(ctx: Pick<Context, 'env'>, options: CheckOptions): Promise<CommandOutcome> {
  if (options.file === undefined || options.file === true) {
    throw new UsageError('check: needs the tunnel file to check', { hint: 'write innisfree check --file PATH' });
  }
  // Passed on as given: the loader refuses --file twice or empty, as for up.
  const { file } = options;
  const { spec } = await loadTunnelSpec({ file }, ctx.env).catch((error: unknown) => {
    throw typeof file === 'string' ? namingFile(error, file) : error;
  });
  const ports = spec.ports.map(formatPortRange);
  const details = [
    `provider ${spec.provider}`,
    `${ports.length} port mapping${ports.length === 1 ? '' : 's'}: ${ports.join(', ')}`,
    ...(spec.homeInterface !== undefined ? [`interface ${spec.homeInterface}`] : []),
  ];
  return { output: `${String(file)}: tunnel "${spec.name}" is valid (${details.join('; ')})\n` };
}

/** Some refusals name only the field ("ports: …"); in a build log the file must be named too. */
function namingFile(error: unknown, file: string): unknown {
  if (!(error instanceof UsageError) || error.message.includes(basename(file))) return error;
  return new UsageError(`${basename(file)}: ${error.message}`, {
    ...(error.hint !== undefined ? { hint: error.hint } : {}),
    cause: error,
  });
}
