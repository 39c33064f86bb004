#!/usr/bin/env node
// The command line: declares commands and options, parses, lazily loads the command module, renders its events
// and output. This is the only module that decides exit codes and calls process.exit.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type CAC, cac } from 'cac';
import type { CommandOutcome } from './lib/command.js';
import { type Context, systemClock, systemExec } from './lib/context.js';
import { ExitCode, InterruptedError, UsageError, exitCodeOf, formatError } from './lib/errors.js';
import { packageVersion } from './lib/paths.js';
import { type RenderMode, createRenderer } from './lib/render.js';
import { ReloadRequests } from './lib/reload-requests.js';
import { signalHandler } from './lib/signals.js';
import { closest } from './lib/suggest.js';
import { TOKEN_ENV_NAMES } from './providers/digitalocean/token.js';

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
}

type Options = Record<string, unknown>;
type Runner = (ctx: Context, args: string[], options: Options) => Promise<CommandOutcome | string | void>;

interface CommandDef {
  name: string;
  /** Positional arguments as cac writes them, e.g. "<name>". */
  args?: string;
  description: string;
  /** Long-running commands handle SIGINT/SIGTERM themselves (orderly teardown); the rest die on the signal. */
  longRunning?: boolean;
  options?: (command: ReturnType<CAC['command']>) => void;
  examples?: string[];
  run: Runner;
}

/** The options that describe a tunnel: shared by every command that builds one. */
function tunnelOptions(command: ReturnType<CAC['command']>): void {
  command
    .option('-n, --name <name>', 'Tunnel name, a short DNS label (default "default"; env INNISFREE_NAME)')
    .option(
      '-p, --ports <ports>',
      'Port mappings PUBLIC[:LOCAL][/tcp|udp][@HOST], comma-separated or repeated (env INNISFREE_PORTS)',
    )
    .option('--port <port>', 'Same as --ports; repeatable')
    .option(
      '-d, --destination <host>',
      'Where the home side forwards to: address, host name, or "none" (default 127.0.0.1)',
    )
    .option(
      '--proxy-protocol <ports>',
      'Public TCP ports that get a PROXY protocol header, or "all" (nginx forwarding)',
    )
    .option(
      '--proxy-protocol-version <1|2>',
      'PROXY header version (default 1; 2: nginx sends v1 and the home forwarder passes it on as v2)',
    )
    .option('--provider <provider>', 'digitalocean or local (default digitalocean)')
    .option('--region <slug>', 'Edge region (default nyc3)')
    .option('--size <slug>', 'Edge droplet size (default s-1vcpu-1gb; s-1vcpu-2gb with nixos-anywhere)')
    .option('--image <id|name>', 'Custom NixOS image for --bootstrap image')
    .option('--bootstrap <how>', 'image or nixos-anywhere (default: image when --image is set)')
    .option('--forwarding <how>', 'nginx (stream proxy) or nftables (kernel DNAT) on the edge (default nginx)')
    .option(
      '--home-forwarding <how>',
      'kernel (nftables DNAT at home, the service sees the client address) or proxy (userspace forwarder); ' +
        'default: kernel for a destination on this host when root and nft are there',
    )
    .option(
      '--masquerade',
      'Kernel forwarding to another host: SNAT to this host there (no route back needed; the client address is lost)',
    )
    .option('--reserved-ip <ipv4>', 'Assign this reserved IP to the edge (survives down)')
    .option(
      '--reserved-ipv6 <ipv6|new>',
      'Assign this reserved IPv6 (or "new": reserve one in the region) to the edge; implies --ipv6, needs ' +
        '--bootstrap nixos-anywhere',
    )
    .option('--keep', 'Keep the edge when up exits (re-attach later to the same droplet and IP)')
    .option('--ipv6', 'Also serve the public ports on the edge IPv6 address')
    .option('--dns <hostname>', 'Point this A/AAAA record at the edge (domain must be in the account)')
    .option('--edge-ssh-port <port>', 'SSH port of the edge (default 22)')
    .option('--wireguard-port <port>', 'WireGuard UDP port of the edge (default 51820)')
    .option('--address-pool <cidr>', 'IPv4 pool for tunnel addresses (default 10.50.0.0/16)')
    .option('--ipv6-pool <cidr>', 'ULA /48 for tunnel IPv6 addresses (default fd49:6e6e:6973::/48)')
    .option('--keepalive <seconds>', 'WireGuard persistent keepalive (default 25)')
    .option('--mtu <bytes>', 'WireGuard MTU (default 1420)')
    .option('-f, --file <path>', 'Tunnel JSON file; flags and INNISFREE_* variables override it')
    .option('--token-file <path>', 'File holding the DigitalOcean API token');
}

const COMMANDS: CommandDef[] = [
  {
    name: 'up',
    description:
      'Bring a tunnel up: edge, WireGuard, forwarding; serve until Ctrl-C/SIGTERM (SIGHUP: reload, see ' +
      'innisfree reload)',
    longRunning: true,
    options: (command) => {
      tunnelOptions(command);
      command.option('--cloud-firewall', 'DigitalOcean: also keep a cloud firewall matching the open ports');
      command.option(
        '--replace-edge',
        'DigitalOcean: make and deploy a new edge, move the reserved IPs and DNS records to it, destroy the old one',
      );
      command.option('--json', 'Progress and the result as JSON lines on stdout');
    },
    examples: [
      'sudo innisfree up --provider local --ports 8080/tcp',
      'sudo innisfree up --name web --ports 443/tcp,80/tcp --image innisfree-edge --keep',
      'sudo innisfree up --name game --ports 27015-27030/udp,27015/tcp --destination 192.168.1.20 --keep',
    ],
    run: async (ctx, _args, options) => {
      const { upCommand } = await import('./commands/up.js');
      await upCommand(ctx, {
        flags: options,
        cloudFirewall: options.cloudFirewall === true,
        replaceEdge: options.replaceEdge === true,
      });
    },
  },
  {
    name: 'plan',
    description: "Print the edge's services.innisfree value and the home-side plan",
    options: (command) => {
      tunnelOptions(command);
      command.option('--json', 'Print the edge config as JSON (exactly what edge.json holds)');
      command.option('--home', 'With --json: print the home-side plan instead');
    },
    examples: [
      'innisfree plan --name web --ports 443/tcp,80:8080/tcp,19132/udp',
      'innisfree plan --name web --ports 443/tcp --json > edge.json',
    ],
    run: async (ctx, _args, options) => {
      const { planCommand } = await import('./commands/plan.js');
      return planCommand(ctx, { flags: options, json: options.json === true, home: options.home === true });
    },
  },
  {
    name: 'reload',
    args: '<name>',
    description:
      'Apply a changed configuration to a running up (SIGHUP) without dropping unchanged ports; waits for the outcome',
    options: (command) => {
      command.option('--json', 'Print the outcome as JSON');
    },
    examples: ['innisfree reload web'],
    run: async (ctx, args, options) => {
      const { reloadCommand } = await import('./commands/reload.js');
      return reloadCommand(ctx, { name: args[0]!, json: options.json === true });
    },
  },
  {
    name: 'status',
    args: '[name]',
    description: 'Show tunnels: phase, public IPs, edge, handshake, traffic, per-port counters, config in sync',
    options: (command) => {
      command.option('--json', 'Print JSON');
    },
    examples: ['innisfree status', 'innisfree status web --json'],
    run: async (ctx, args, options) => {
      const { statusCommand } = await import('./commands/status.js');
      return statusCommand(ctx, { ...(args[0] ? { name: args[0] } : {}), json: options.json === true });
    },
  },
  {
    name: 'deploy',
    args: '<name>',
    description: "Apply the tunnel's recorded edge config to its kept edge again (deploy-rs, magic rollback)",
    examples: ['innisfree deploy web'],
    run: async (ctx, args) => {
      const { deployCommand } = await import('./commands/deploy.js');
      return deployCommand(ctx, args[0]!);
    },
  },
  {
    name: 'ssh',
    args: '<name>',
    description: "Open a shell on the tunnel's edge (pinned host key); words after -- run as a remote command",
    examples: ['innisfree ssh web', 'innisfree ssh web -- innisfree-edge-status'],
    run: async (ctx, args, options) => {
      const { sshCommand } = await import('./commands/ssh.js');
      const rest = Array.isArray(options['--']) ? options['--'].map(String) : [];
      return sshCommand(ctx, args[0]!, rest);
    },
  },
  {
    name: 'ip',
    args: '<name>',
    description: "Print the edge's public IPv4 (and IPv6 when known)",
    options: (command) => {
      command.option('--json', 'Print {"name","ipv4","ipv6"} as JSON');
    },
    run: async (ctx, args, options) => {
      const { ipCommand } = await import('./commands/ip.js');
      return ipCommand(ctx, args[0]!, options.json === true);
    },
  },
  {
    name: 'proxy',
    args: '[name]',
    description: "Run the home forwarder alone: a tunnel's forwards, or any address pair",
    longRunning: true,
    options: (command) => {
      command
        .option('--listen <address>', 'Address to listen on (default with NAME: the home tunnel address)')
        .option(
          '-p, --ports <ports>',
          'Without NAME: PUBLIC[:LOCAL][/tcp|udp], listen on PUBLIC, forward to LOCAL; comma-separated or repeated',
        )
        .option('--port <port>', 'Same as --ports; repeatable')
        .option(
          '-d, --destination <host>',
          "Where to forward: address or host name (default 127.0.0.1, or the tunnel's)",
        )
        .option('--max-connections <n>', 'TCP connections at once per port (default 4096)')
        .option('--idle-timeout <seconds>', 'Close TCP connections idle this long (default: never)')
        .option('--udp-timeout <seconds>', 'End UDP sessions idle this long (default 60)')
        .option('--max-sessions <n>', 'UDP sessions at once per port (default 4096)');
    },
    examples: [
      'innisfree proxy web',
      'innisfree proxy --listen 10.50.7.2 --ports 443/tcp,19132/udp --destination 192.168.1.10',
    ],
    run: async (ctx, args, options) => {
      const { proxyCommand } = await import('./commands/proxy.js');
      return proxyCommand(ctx, args, options);
    },
  },
  {
    name: 'schema',
    description: 'Print the JSON Schema of the edge config (services.innisfree)',
    run: async () => {
      const { schemaCommand } = await import('./commands/schema.js');
      return schemaCommand();
    },
  },
];

/** --provider and --token-file for commands that talk to a provider without a tunnel spec. */
function providerOptions(command: ReturnType<CAC['command']>): void {
  command
    .option('--provider <provider>', 'digitalocean or local (default digitalocean)')
    .option('--token-file <path>', 'File holding the DigitalOcean API token');
}

COMMANDS.push(
  {
    name: 'list',
    description: 'List every innisfree edge: addresses, region, size, age, monthly cost',
    options: (command) => {
      providerOptions(command);
      command.option('--json', 'Print JSON');
    },
    run: async (ctx, _args, options) => {
      const { listCommand } = await import('./commands/list.js');
      return listCommand(ctx, { flags: options, json: options.json === true });
    },
  },
  {
    name: 'down',
    args: '<name>',
    description: "Destroy a tunnel's edge (and its SSH key, DNS record, firewall) and remove its local state",
    options: (command) => {
      providerOptions(command);
      command.option('--release-ip', 'Also release the reserved IP (kept by default)');
      command.option('--json', 'Print JSON');
    },
    examples: ['innisfree down web', 'innisfree down web --release-ip'],
    run: async (ctx, args, options) => {
      const { downCommand } = await import('./commands/down.js');
      return downCommand(ctx, args[0]!, { flags: options, json: options.json === true });
    },
  },
  {
    name: 'clean',
    description:
      'List edges tagged innisfree without local state, stray innisfree-* keys and firewalls, and what killed ' +
      'runs left; remove them with --yes',
    options: (command) => {
      providerOptions(command);
      command.option('--yes', 'Destroy them');
      command.option('--release-ip', 'Also release their reserved IPs');
      command.option('--json', 'Print JSON');
    },
    run: async (ctx, _args, options) => {
      const { cleanCommand } = await import('./commands/clean.js');
      return cleanCommand(ctx, { flags: options, json: options.json === true });
    },
  },
  {
    name: 'doctor',
    description: 'Check the provider account and the local tools and privileges innisfree needs',
    options: (command) => {
      providerOptions(command);
      command.option('--json', 'Print JSON');
    },
    run: async (ctx, _args, options) => {
      const { doctorCommand } = await import('./commands/doctor.js');
      return doctorCommand(ctx, { flags: options, json: options.json === true });
    },
  },
  {
    name: 'image',
    args: '<action> [target]',
    description: 'Custom NixOS edge images: upload --url URL --region R | list | delete ID|NAME',
    options: (command) => {
      command
        .option('--url <url>', 'upload: where DigitalOcean downloads the image (qcow2/raw, optionally gzip)')
        .option('--region <slug>', 'upload: region to import into')
        .option('--name <name>', 'upload: image name (default innisfree-edge-<date>)')
        .option('--description <text>', 'upload: image description')
        .option('--no-wait', 'upload: return once the import has started')
        .option('--token-file <path>', 'File holding the DigitalOcean API token')
        .option('--json', 'Print JSON');
    },
    examples: [
      'innisfree image upload --url https://example.com/nixos-edge.qcow2.gz --region nyc3',
      'innisfree image list',
      'innisfree image delete innisfree-edge-2026-01-01',
    ],
    run: async (ctx, args, options) => {
      const { imageCommand } = await import('./commands/image.js');
      return imageCommand(ctx, args[0], args[1], { flags: options, json: options.json === true });
    },
  },
);

const PROTECT = '\u0001';

/**
 * cac's parser turns numeric-looking values into numbers ("007" → 7, "1e3" → 1000). Values of options that take
 * one are marked before parsing and unmarked after, so they reach the commands exactly as typed.
 */
function protectValues(argv: readonly string[], valueOptions: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const match = /^--?([^=]+)(=(.*))?$/.exec(arg);
    if (match && valueOptions.has(camel(match[1]!))) {
      if (match[2] !== undefined) {
        out.push(`${arg.slice(0, arg.indexOf('=') + 1)}${PROTECT}${match[3]}`);
        continue;
      }
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('-')) {
        out.push(arg, `${PROTECT}${next}`);
        i++;
        continue;
      }
    }
    out.push(arg);
  }
  return out;
}

function unprotect(value: unknown): unknown {
  if (typeof value === 'string') return value.startsWith(PROTECT) ? value.slice(1) : value;
  if (Array.isArray(value)) return value.map(unprotect);
  return value;
}

function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function buildCli(): { cli: CAC; defs: Map<string, CommandDef> } {
  const cli = cac('innisfree');
  const defs = new Map<string, CommandDef>();
  for (const def of COMMANDS) {
    const command = cli.command(def.args ? `${def.name} ${def.args}` : def.name, def.description);
    def.options?.(command);
    for (const example of def.examples ?? []) command.example(example);
    defs.set(def.name, def);
  }
  cli.option('--verbose', 'Show debug output');
  cli.help();
  cli.version(packageVersion());
  return { cli, defs };
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const { cli, defs } = buildCli();
  const args = argv.slice(2);
  const first = args.find((a) => !a.startsWith('-'));
  const commandNames = [...defs.keys()];
  const renderMode: RenderMode = args.includes('--json') ? 'json' : io.stderr.isTTY ? 'tty' : 'plain';
  const renderer = createRenderer(renderMode, io.stderr, io.stdout, {
    verbose: args.includes('--verbose'),
    jsonEvents: first !== undefined && defs.get(first)?.longRunning ? 'stdout' : 'stderr',
  });
  const controller = new AbortController();
  const onSignal = signalHandler({
    stop: (signal) => controller.abort(new InterruptedError(`interrupted by ${signal}`)),
    exitNow: (signal) => {
      // A second signal during teardown: the user wants out now.
      renderer.close();
      io.stderr.write(`innisfree: ${signal} again, exiting without teardown\n`);
      process.exit(ExitCode.interrupted);
    },
  });
  // Left to Node's default, SIGHUP (a closed terminal, or a reload asked the Unix way) would kill a long-running
  // command with no teardown at all, leaving the local edge's processes and namespaces behind. For up it is a
  // reload (applied once the tunnel is ready); any other long-running command keeps running.
  const reloads = first === 'up' ? new ReloadRequests() : undefined;
  const onHangup = (): void => {
    if (reloads) {
      renderer.emit({ type: 'log', level: 'info', message: 'SIGHUP received: reloading the configuration' });
      reloads.request();
      return;
    }
    renderer.emit({
      type: 'log',
      level: 'warn',
      message: 'SIGHUP received: this command does not reload; it keeps running (stop it with Ctrl-C or SIGTERM)',
    });
  };
  try {
    if (first !== undefined && !defs.has(first)) {
      const suggestion = closest(first, commandNames);
      throw new UsageError(`unknown command "${first}"`, {
        hint: suggestion
          ? `did you mean "${suggestion}"? See innisfree --help`
          : 'see innisfree --help for the commands',
      });
    }
    const def = first === undefined ? undefined : defs.get(first);
    const command = cli.commands.find((c) => c.name === first);
    const valueOptions = new Set(
      [...cli.globalCommand.options, ...(command?.options ?? [])].filter((o) => !o.isBoolean).flatMap((o) => o.names),
    );
    cli.parse(['node', 'innisfree', ...protectValues(args, valueOptions)], { run: false });
    if (cli.options.help || cli.options.version) return ExitCode.ok;
    if (def === undefined || command === undefined) {
      cli.outputHelp();
      return first === undefined && args.length === 0 ? ExitCode.ok : ExitCode.usage;
    }
    checkUnknownOptions(cli, command);
    const options: Options = {};
    for (const [key, value] of Object.entries(cli.options)) options[key] = unprotect(value);
    const positional = cli.args.map((a) => String(unprotect(a)));
    const ctx: Context = {
      exec: systemExec,
      clock: systemClock,
      emit: renderer.emit,
      env: io.env,
      signal: controller.signal,
      ...(reloads ? { reloads } : {}),
    };
    if (def.longRunning) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onHangup);
    }
    const outcome = await def.run(ctx, positional, options);
    renderer.close();
    const result: CommandOutcome = typeof outcome === 'string' ? { output: outcome } : (outcome ?? {});
    if (result.output) io.stdout.write(result.output);
    return result.exitCode ?? ExitCode.ok;
  } catch (error) {
    renderer.close();
    const failure = translateCacError(error, cli);
    io.stderr.write(`innisfree: ${formatError(failure)}\n`);
    if (io.env.INNISFREE_DEBUG && failure instanceof Error && failure.stack) io.stderr.write(`${failure.stack}\n`);
    return exitCodeOf(failure);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onHangup);
  }
}

function checkUnknownOptions(cli: CAC, command: CAC['commands'][number]): void {
  const known = [...cli.globalCommand.options, ...command.options];
  for (const name of Object.keys(cli.options)) {
    if (name === '--' || known.some((o) => o.names.includes(name))) continue;
    const flag = name.length > 1 ? `--${kebab(name)}` : `-${name}`;
    const candidates = known.flatMap((o) => o.names.filter((n) => n.length > 1).map((n) => `--${kebab(n)}`));
    const suggestion = closest(flag, candidates);
    throw new UsageError(`unknown option ${flag} for "${command.name}"`, {
      hint: suggestion
        ? `did you mean ${suggestion}? See innisfree ${command.name} --help`
        : `see innisfree ${command.name} --help`,
    });
  }
  command.checkOptionValue();
  command.checkRequiredArgs();
  command.checkUnusedArgs();
}

function translateCacError(error: unknown, cli: CAC): unknown {
  if (error instanceof Error && error.name === 'CACError') {
    const name = cli.matchedCommandName;
    return new UsageError(error.message.replace(/`/g, '"'), {
      hint: name ? `see innisfree ${name} --help` : 'see innisfree --help',
    });
  }
  return error;
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * The environment the commands read, with the API token; the process's own environment without it. Every child
 * (ip, wg, wireguard-go, sshd, nix, deploy-rs) inherits process.env, so the token would otherwise sit in their
 * /proc/PID/environ for the tunnel's life; it reaches only the HTTP client, through the snapshot.
 */
export function takeSecretsFromEnvironment(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const snapshot = { ...env };
  for (const name of TOKEN_ENV_NAMES) delete env[name];
  return snapshot;
}

if (isEntryPoint()) {
  const env = takeSecretsFromEnvironment(process.env);
  const code = await main(process.argv, { stdout: process.stdout, stderr: process.stderr, env });
  // Let stdout drain before exiting: output piped to another program must not be cut short.
  process.stdout.write('', () => process.exit(code));
}
