// The policy objects of a manifest set as the control plane's store holds them (StoreSnapshot.policy):
// defaults applied and every reference given its namespace. The runtime hands these to its local store
// beside its Services, pods and routes; the kubernetes store converts what it watches the same way.
import { byNamespaceName, type PolicyEntries } from '../store.js';
import type { ManifestSet } from '../../../manifests/types.js';

export function policyEntries(set: ManifestSet): PolicyEntries {
  const out = {
    servers: [],
    authorizationPolicies: [],
    meshTLSAuthentications: [],
    networkAuthentications: [],
    rateLimits: [],
  } as {
    -readonly [K in keyof PolicyEntries]: PolicyEntries[K][number][];
  };
  for (const p of set.policies ?? []) {
    const namespace = p.metadata.namespace;
    const name = p.metadata.name;
    switch (p.kind) {
      case 'Server':
        out.servers.push({
          namespace,
          name,
          podSelector: p.spec.podSelector,
          port: p.spec.port,
          proxyProtocol: p.spec.proxyProtocol,
        });
        break;
      case 'AuthorizationPolicy':
        out.authorizationPolicies.push({
          namespace,
          name,
          target: { kind: p.spec.targetRef.kind, name: p.spec.targetRef.name },
          authentications: p.spec.requiredAuthenticationRefs.map((r) => ({
            kind: r.kind,
            namespace: r.namespace ?? namespace,
            name: r.name,
          })),
        });
        break;
      case 'MeshTLSAuthentication':
        out.meshTLSAuthentications.push({
          namespace,
          name,
          identities: p.spec.identities ?? [],
          identityRefs: (p.spec.identityRefs ?? []).map((r) => ({
            kind: r.kind,
            namespace: r.kind === 'Namespace' ? r.name : (r.namespace ?? namespace),
            name: r.name,
          })),
        });
        break;
      case 'NetworkAuthentication':
        out.networkAuthentications.push({ namespace, name, networks: p.spec.networks });
        break;
      case 'HTTPLocalRateLimitPolicy':
        out.rateLimits.push({
          namespace,
          name,
          server: p.spec.targetRef.name,
          ...(p.spec.total !== undefined ? { total: p.spec.total.requestsPerSecond } : {}),
          ...(p.spec.identity !== undefined ? { identity: p.spec.identity.requestsPerSecond } : {}),
          overrides: p.spec.overrides.map((o) => ({
            requestsPerSecond: o.requestsPerSecond,
            serviceAccounts: o.clientRefs.map((c) => ({ namespace: c.namespace ?? namespace, name: c.name })),
          })),
        });
        break;
    }
  }
  for (const list of Object.values(out)) list.sort(byNamespaceName);
  return out;
}
