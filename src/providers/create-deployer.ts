// Which Deployer applies an edge's config: deploy-rs for real (NixOS) edges, the local deployer for the local
// provider's namespaces. Both take the same DeployRequest and fail the same way (DeployError / RolledBackError).
import type { Context } from '../lib/context.js';
import { systemStreamExec } from '../lib/stream-exec.js';
import type { ProviderName } from '../spec/tunnel.js';
import { DeployRsDeployer } from '../edge/deploy.js';
import type { Deployer } from '../edge/deployer.js';
import { runSsh } from '../edge/ssh.js';

export async function createDeployer(provider: ProviderName, ctx: Pick<Context, 'exec' | 'env'>): Promise<Deployer> {
  if (provider === 'local') {
    const { LocalDeployer } = await import('./local/deployer.js');
    return new LocalDeployer({ exec: ctx.exec, env: ctx.env, ssh: runSsh });
  }
  return new DeployRsDeployer({ exec: systemStreamExec, env: ctx.env, ssh: runSsh });
}
