// The activation script of a local edge, the program the local deployer runs through the edge's sshd: it runs
// inside the edge namespace, so everything the Agent starts (wireguard-go, nginx, the confirmation watcher) lives
// there too. This file only reads argv and stdin and prints the outcome; the work is the Agent's (edge-agent.ts).
//
//   innisfree-local-edge activate [--confirm-timeout S] [--fail]   stdin: {"edgeJson","rendered","configHash"}
//   innisfree-local-edge confirm --generation G
//   innisfree-local-edge repair                               (innisfree-edge-repair: re-apply what serves now)
//   innisfree-local-edge watch --generation G --deadline MS   (internal: the confirmation watcher)
import { fileURLToPath } from 'node:url';
import { systemExec } from '../../lib/context.js';
import { isEntryPoint } from '../../lib/entry-point.js';
import { LOCAL_EDGE_DIR_ENV } from './edge-runtime-files.js';
import { Agent, EXIT_ROLLED_BACK, RolledBack, log } from './edge-agent.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function option(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

export async function agentMain(args: string[]): Promise<number> {
  const dir = process.env[LOCAL_EDGE_DIR_ENV];
  if (!dir) {
    log(`innisfree-local-edge: ${LOCAL_EDGE_DIR_ENV} is not set; this runs on a local edge, through its sshd`);
    return 2;
  }
  const agent = new Agent(dir, { exec: systemExec, script: fileURLToPath(import.meta.url) });
  const [command, ...rest] = args;
  try {
    switch (command) {
      case 'activate': {
        const input = JSON.parse(await readStdin()) as { edgeJson: string; rendered: unknown; configHash: string };
        const generation = await agent.activate(
          input,
          Number(option(rest, '--confirm-timeout') ?? 30),
          rest.includes('--fail'),
        );
        process.stdout.write(`${JSON.stringify({ generation })}\n`);
        return 0;
      }
      case 'confirm':
        await agent.confirm(Number(option(rest, '--generation')));
        process.stdout.write(`${JSON.stringify({ confirmed: true })}\n`);
        return 0;
      case 'watch':
        await agent.watch(Number(option(rest, '--generation')), Number(option(rest, '--deadline')));
        return 0;
      case 'repair':
        process.stdout.write(`${await agent.repair()}\n`);
        return 0;
      default:
        log('usage: innisfree-local-edge activate [--confirm-timeout S] [--fail] | confirm --generation G | repair');
        return 2;
    }
  } catch (error) {
    log((error as Error).message);
    process.stdout.write(
      `${JSON.stringify({ error: (error as Error).message, rolledBack: error instanceof RolledBack })}\n`,
    );
    return error instanceof RolledBack ? EXIT_ROLLED_BACK : 1;
  }
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = await agentMain(process.argv.slice(2));
}
