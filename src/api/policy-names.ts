// The names of the default inbound policies: what a port no Server covers admits (the mesh's setting, a
// namespace's or pod's annotation, the proxy's fallback until the policy service answers). Defined
// once here for the policy API, the manifests' schemas and the control plane's store; this file imports
// nothing, so the manifests' schemas stay self-contained.
export const DEFAULT_POLICY_NAMES = [
  'all-unauthenticated',
  'all-authenticated',
  'cluster-authenticated',
  'deny',
] as const;
export type DefaultPolicyName = (typeof DEFAULT_POLICY_NAMES)[number];
