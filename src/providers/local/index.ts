// The local provider (network namespaces on this machine) and its deployer, for the provider factory and tests.
export { LocalProvider, type LocalProviderOptions, createLocalProvider } from './local-provider.js';
export { type LocalEdge, type LocalEdgeRecord, DEFAULT_RUNTIME_DIR } from './local-edge-record.js';
export { LocalDeployer, type LocalDeployerOptions, FAIL_ACTIVATION_ENV } from './local-deployer.js';
export { type RenderedEdge, renderEdge } from './rendered-edge.js';
export { type LocalEdgeLayout, layoutOf } from './layout.js';
