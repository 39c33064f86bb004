// The local provider (network namespaces on this machine) and its deployer, for the provider factory and tests.
export {
  LocalProvider,
  type LocalEdge,
  type LocalEdgeRecord,
  type LocalProviderOptions,
  createLocalProvider,
  DEFAULT_RUNTIME_DIR,
} from './local-provider.js';
export { LocalDeployer, type LocalDeployerOptions, FAIL_ACTIVATION_ENV } from './local-deployer.js';
export { type RenderedEdge, renderEdge } from './rendered-edge.js';
export { type LocalEdgeLayout, layoutOf } from './layout.js';
