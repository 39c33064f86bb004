// The one place that switches on the provider: which adapter finds and creates edges, which deployer applies their
// config, how they come to run NixOS, and what this machine needs for them. Adapters load lazily, so a command only
// pays for the one it uses, and nothing here resolves a token before it is asked for the provider.
import { statSync } from 'node:fs';
import type { Context } from '../lib/context.js';
import { UsageError } from '../lib/errors.js';
import { type Check, cloudHomeRequirements, localEdgeRequirements } from '../lib/requirements.js';
import { systemStreamExec } from '../lib/stream-exec.js';
import type { EdgeBootstrap } from '../edge/reach-edge.js';
import { DeployRsDeployer } from '../edge/deploy.js';
import type { Deployer } from '../edge/deployer.js';
import { runSsh } from '../edge/ssh.js';
import { PROVIDERS, type ProviderName, type TunnelSpec } from '../spec/tunnel.js';
import type { Provider, ProviderContext } from './provider.js';

export type { ProviderContext } from './provider.js';

export interface ProviderOptions {
  /** DigitalOcean: file holding the API token (else DIGITALOCEAN_TOKEN / DIGITALOCEAN_ACCESS_TOKEN). */
  tokenFile?: string | undefined;
  /** DigitalOcean: manage a cloud firewall matching the edge's ports. */
  firewall?: boolean;
}

/** Everything that differs between providers, behind one name. */
export interface ProviderKit {
  readonly name: ProviderName;
  /** The provider port: finds, creates and destroys edges (DigitalOcean resolves its token here). */
  provider(ctx: ProviderContext, options?: ProviderOptions): Promise<Provider>;
  /** What applies an edge's config: deploy-rs for NixOS edges, the local deployer for namespaces. */
  deployer(ctx: Pick<Context, 'exec' | 'env'>): Promise<Deployer>;
  /** How an edge of this tunnel comes to run NixOS. */
  bootstrap(spec: Pick<TunnelSpec, 'bootstrap'>): EdgeBootstrap;
  /** What this machine needs to run tunnels with the provider: tools and privileges, no network. */
  requirements(ctx: Pick<Context, 'exec' | 'env'>, spec?: Pick<TunnelSpec, 'bootstrap'>): Promise<Check[]>;
  /** What the provider's account says (doctor): token, limits; flags as for tokenFileFrom. None without an account. */
  accountChecks?(ctx: ProviderContext, flags: Record<string, unknown>): Promise<Check[]>;
}

const deployRs = async (ctx: Pick<Context, 'env'>): Promise<Deployer> =>
  new DeployRsDeployer({ exec: systemStreamExec, env: ctx.env, ssh: runSsh });

const digitalocean: ProviderKit = {
  name: 'digitalocean',
  async provider(ctx, options = {}) {
    if (options.tokenFile) checkTokenFile(ctx, options.tokenFile);
    const { createDigitalOceanProvider } = await import('./digitalocean/index.js');
    return createDigitalOceanProvider(ctx, options);
  },
  deployer: deployRs,
  bootstrap: (spec) => (spec.bootstrap === 'nixos-anywhere' ? 'nixos-anywhere' : 'none'),
  requirements: (ctx, spec) => cloudHomeRequirements(ctx.env, { nixosAnywhere: spec?.bootstrap === 'nixos-anywhere' }),
  async accountChecks(ctx, flags) {
    const { accountChecks } = await import('./digitalocean/account-checks.js');
    return accountChecks(ctx, flags);
  },
};

const local: ProviderKit = {
  name: 'local',
  async provider(ctx) {
    const { createLocalProvider } = await import('./local/index.js');
    const provider = createLocalProvider(ctx);
    await provider.checkRuntimeDir();
    return provider;
  },
  async deployer(ctx) {
    const { LocalDeployer } = await import('./local/deployer.js');
    return new LocalDeployer({ exec: ctx.exec, env: ctx.env, ssh: runSsh });
  },
  // The local edge boots its NixOS config straight from the renderers; there is nothing to install.
  bootstrap: () => 'none',
  requirements: (ctx) => localEdgeRequirements(ctx),
};

/**
 * Before the token reader opens it: a token file is a small regular file (a FIFO would hang the read, /dev/zero
 * would fill memory), and one every user may read is accepted with a warning, as ssh warns about a key file: the
 * token controls the whole account. A missing or unreadable file is the token reader's error to report.
 */
function checkTokenFile(ctx: Pick<Context, 'emit'>, tokenFile: string): void {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(tokenFile);
  } catch {
    return;
  }
  if (!stat.isFile()) {
    const kind = stat.isDirectory()
      ? 'a directory'
      : stat.isFIFO()
        ? 'a FIFO'
        : stat.isCharacterDevice() || stat.isBlockDevice()
          ? 'a device'
          : 'not a regular file';
    throw new UsageError(`token file ${tokenFile} is ${kind}, not a regular file`, {
      hint: 'point --token-file (or tokenFile) at a file holding the API token',
    });
  }
  if (stat.size > MAX_TOKEN_FILE_BYTES) {
    throw new UsageError(`token file ${tokenFile} is ${stat.size} bytes, too large for an API token`, {
      hint: 'point --token-file (or tokenFile) at a file holding only the API token',
    });
  }
  if ((stat.mode & 0o007) === 0) return;
  const octal = (stat.mode & 0o777).toString(8).padStart(4, '0');
  ctx.emit({
    type: 'log',
    level: 'warn',
    message:
      `token file ${tokenFile} is open to every user on this machine (mode ${octal}); anyone who reads it ` +
      `controls the DigitalOcean account: chmod 600 ${tokenFile}`,
  });
}

const MAX_TOKEN_FILE_BYTES = 64 * 1024;

export function providerKit(name: string): ProviderKit {
  switch (name) {
    case 'digitalocean':
      return digitalocean;
    case 'local':
      return local;
    default:
      throw new UsageError(
        (PROVIDERS as readonly string[]).includes(name)
          ? `provider "${name}" is not available in this build`
          : `unknown provider "${name}"`,
        { hint: 'use --provider digitalocean, or --provider local for an edge in network namespaces on this machine' },
      );
  }
}

/** The provider port alone, for commands that only find and destroy edges (list, down, clean). */
export async function createProvider(
  name: string,
  ctx: ProviderContext,
  options: ProviderOptions = {},
): Promise<Provider> {
  return providerKit(name).provider(ctx, options);
}
