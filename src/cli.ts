#!/usr/bin/env node
// The command line: declares commands and options, parses, lazily loads the command module, renders its events
// and output. This is the only module that decides exit codes and calls process.exit.
import { type CAC, cac } from 'cac';
import { type OptionSpec, type OptionValue, type ParsedArgv, optionKey, optionSpec, parseArgv } from './lib/argv.js';
import type { CommandOutcome } from './lib/command.js';
import { type Context, systemClock, systemExec } from './lib/context.js';
import { isEntryPoint } from './lib/entry-point.js';
import { ExitCode, InterruptedError, UsageError, exitCodeOf, formatError } from './lib/errors.js';
import { packageVersion } from './lib/package-root.js';
import { type RenderMode, createRenderer } from './lib/progress-renderer.js';
import { ReloadRequests } from './lib/reload-requests.js';
import { signalHandler } from './lib/signals.js';
import { closest } from './lib/suggest.js';
import { TOKEN_ENV_NAMES } from './providers/digitalocean/token.js';

export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
}

/** What a command line says, converted once (parseArgv): the words after the command name, options, after "--". */
interface Argv {
  args: string[];
  options: Record<string, OptionValue>;
  rest: string[];
}

/** Adapts the command line to the command's options and runs it. */
type Runner = (ctx: Context, argv: Argv) => Promise<CommandOutcome>;

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
    .option(
      '--home-interface <name>',
      'Home WireGuard interface, "isf-" and up to 11 more (default: picked from the name)',
    )
    .option('-f, --file <path>', 'Tunnel JSON file; flags and INNISFREE_* variables override it')
    .option('--token-file <path>', 'File holding the DigitalOcean API token');
}

/** --provider and --token-file for commands that talk to a provider without a tunnel spec. */
function providerOptions(command: ReturnType<CAC['command']>): void {
  command
    .option('--provider <provider>', 'digitalocean or local (default digitalocean)')
    .option('--token-file <path>', 'File holding the DigitalOcean API token');
}

const COMMANDS: readonly CommandDef[] = [
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
    run: async (ctx, { options }) => {
      const { upCommand } = await import('./commands/up.js');
      return upCommand(ctx, {
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
    run: async (ctx, { options }) => {
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
    run: async (ctx, { args, options }) => {
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
    run: async (ctx, { args, options }) => {
      const { statusCommand } = await import('./commands/status.js');
      return statusCommand(ctx, { ...(args[0] ? { name: args[0] } : {}), json: options.json === true });
    },
  },
  {
    name: 'deploy',
    args: '<name>',
    description: "Apply the tunnel's recorded edge config to its kept edge again (deploy-rs, magic rollback)",
    examples: ['innisfree deploy web'],
    run: async (ctx, { args }) => {
      const { deployCommand } = await import('./commands/deploy.js');
      return deployCommand(ctx, { name: args[0]! });
    },
  },
  {
    name: 'ssh',
    args: '<name>',
    description: "Open a shell on the tunnel's edge (pinned host key); words after -- run as a remote command",
    examples: ['innisfree ssh web', 'innisfree ssh web -- innisfree-edge-status'],
    run: async (ctx, { args, rest }) => {
      const { sshCommand } = await import('./commands/ssh.js');
      return sshCommand(ctx, { name: args[0]!, remoteCommand: rest });
    },
  },
  {
    name: 'ip',
    args: '<name>',
    description: "Print the edge's public IPv4 (and IPv6 when known)",
    options: (command) => {
      command.option('--json', 'Print {"name","ipv4","ipv6"} as JSON');
    },
    run: async (ctx, { args, options }) => {
      const { ipCommand } = await import('./commands/ip.js');
      return ipCommand(ctx, { name: args[0]!, json: options.json === true });
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
    run: async (ctx, { args, options }) => {
      const { proxyCommand } = await import('./commands/proxy.js');
      return proxyCommand(ctx, { ...(args[0] !== undefined ? { name: args[0] } : {}), flags: options });
    },
  },
  {
    name: 'check',
    description: 'Check a tunnel file the way up --file reads it (spec only: no network, no state, no token)',
    options: (command) => {
      command.option('-f, --file <path>', 'Tunnel JSON file to check (INNISFREE_* and config.json apply, as for up)');
    },
    examples: ['innisfree check --file tunnel.json'],
    run: async (ctx, { options }) => {
      const { checkCommand } = await import('./commands/check.js');
      return checkCommand(ctx, { file: options.file });
    },
  },
  {
    name: 'schema',
    description: 'Print the JSON Schema of the edge config (services.innisfree)',
    run: async (ctx) => {
      const { schemaCommand } = await import('./commands/schema.js');
      return schemaCommand(ctx, {});
    },
  },
  {
    name: 'list',
    description: 'List every innisfree edge: addresses, region, size, age, monthly cost',
    options: (command) => {
      providerOptions(command);
      command.option('--json', 'Print JSON');
    },
    run: async (ctx, { options }) => {
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
    run: async (ctx, { args, options }) => {
      const { downCommand } = await import('./commands/down.js');
      return downCommand(ctx, { name: args[0]!, flags: options, json: options.json === true });
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
    run: async (ctx, { options }) => {
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
    run: async (ctx, { options }) => {
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
    run: async (ctx, { args, options }) => {
      const { imageCommand } = await import('./commands/image.js');
      return imageCommand(ctx, { action: args[0], target: args[1], flags: options, json: options.json === true });
    },
  },
];

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
    const specs = [...cli.globalCommand.options, ...(command?.options ?? [])].map((o) => optionSpec(o.rawName));
    const parsed = parseArgv(args, specs);
    if (parsed.options.help || parsed.options.version) {
      if (parsed.options.help) (command ?? cli.globalCommand).outputHelp();
      if (parsed.options.version && (command === undefined || parsed.options.help)) cli.outputVersion();
      return ExitCode.ok;
    }
    if (def === undefined || command === undefined) {
      cli.globalCommand.outputHelp();
      return first === undefined && args.length === 0 ? ExitCode.ok : ExitCode.usage;
    }
    checkArgv(parsed, specs, command);
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
    const outcome = await def.run(ctx, {
      args: parsed.positional.slice(1),
      options: parsed.options,
      rest: parsed.rest,
    });
    renderer.close();
    if (outcome.output) io.stdout.write(outcome.output);
    return outcome.exitCode ?? ExitCode.ok;
  } catch (error) {
    renderer.close();
    io.stderr.write(`innisfree: ${formatError(error)}\n`);
    if (io.env.INNISFREE_DEBUG && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    return exitCodeOf(error);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onHangup);
  }
}

/** What cac checked after parsing, with its messages: unknown options, options without their value, arguments. */
function checkArgv(parsed: ParsedArgv, specs: readonly OptionSpec[], command: CAC['commands'][number]): void {
  const hint = `see innisfree ${command.name} --help`;
  const flag = parsed.unknown[0];
  if (flag !== undefined) {
    const candidates = specs.flatMap((o) => o.names.filter((n) => n.length > 1).map((n) => `--${n}`));
    const suggestion = closest(flag, candidates);
    throw new UsageError(`unknown option ${flag} for "${command.name}"`, {
      hint: suggestion ? `did you mean ${suggestion}? See innisfree ${command.name} --help` : hint,
    });
  }
  for (const spec of specs) {
    const value = parsed.options[optionKey(spec)];
    if (spec.rawName.includes('<') && typeof value === 'boolean') {
      throw new UsageError(`option "${spec.rawName}" value is missing`, { hint });
    }
  }
  const positional = parsed.positional.slice(1);
  if (positional.length < command.args.filter((a) => a.required).length) {
    throw new UsageError(`missing required args for command "${command.rawName}"`, { hint });
  }
  if (!command.args.some((a) => a.variadic) && positional.length > command.args.length) {
    const unused = positional.slice(command.args.length).map((a) => `"${a}"`);
    throw new UsageError(`Unused args: ${unused.join(', ')}`, { hint });
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

if (isEntryPoint(import.meta.url)) {
  const env = takeSecretsFromEnvironment(process.env);
  const code = await main(process.argv, { stdout: process.stdout, stderr: process.stderr, env });
  // Let stdout drain before exiting: output piped to another program must not be cut short.
  process.stdout.write('', () => process.exit(code));
}
