// The inbound policy of one pod, computed from a store snapshot: the Servers that select it and their
// ports, the authorizations of each (Server and Namespace targets; route targets on its routes), the
// rate limit, and the default for every other port. Pure: the service streams what this returns.
import type {
  Authorization,
  DefaultPolicyName,
  InboundPolicy,
  InboundRoute,
  PortPolicy,
  RateLimit,
  Requirement,
} from '../../api/policy.js';
import { defaultAuthorizations } from '../../api/policy.js';
import type { Route } from '../../api/destination.js';
import { matchMessage } from '../destination/resolve.js';
import type {
  AuthorizationPolicyEntry,
  PolicyEntries,
  RouteEntry,
  ServerEntry,
  StoreSnapshot,
} from '../store/store.js';
import { podServers } from './servers.js';

export interface PolicySettings {
  readonly trustDomain: string;
  /** The mesh-wide default (`up --default-inbound-policy`); pods and namespaces may say otherwise. */
  readonly defaultPolicy: DefaultPolicyName;
  /** The cluster's pod networks, for cluster-authenticated. */
  readonly clusterNetworks: readonly string[];
}

const NO_POLICY: PolicyEntries = {
  servers: [],
  authorizationPolicies: [],
  meshTLSAuthentications: [],
  networkAuthentications: [],
  rateLimits: [],
};

function requirements(p: AuthorizationPolicyEntry, policy: PolicyEntries, td: string): Requirement[] | undefined {
  const all: Requirement[] = [];
  for (const ref of p.authentications) {
    switch (ref.kind) {
      case 'ServiceAccount':
        all.push({ identities: [`spiffe://${td}/ns/${ref.namespace}/sa/${ref.name}`], networks: [] });
        break;
      case 'MeshTLSAuthentication': {
        const m = policy.meshTLSAuthentications.find((x) => x.namespace === ref.namespace && x.name === ref.name);
        if (m === undefined) return undefined; // a reference to nothing authorizes nobody
        const ids = [...m.identities];
        for (const r of m.identityRefs) {
          if (r.kind === 'ServiceAccount') ids.push(`spiffe://${td}/ns/${r.namespace}/sa/${r.name}`);
          else ids.push(r.name === '*' ? `spiffe://${td}/ns/*/sa/*` : `spiffe://${td}/ns/${r.name}/sa/*`);
        }
        all.push({ identities: ids, networks: [] });
        break;
      }
      case 'NetworkAuthentication': {
        const n = policy.networkAuthentications.find((x) => x.namespace === ref.namespace && x.name === ref.name);
        if (n === undefined) return undefined;
        all.push({ identities: [], networks: n.networks.map((x) => ({ cidr: x.cidr, except: [...x.except] })) });
        break;
      }
    }
  }
  return all;
}

function authorizationsFor(
  policy: PolicyEntries,
  td: string,
  match: (p: AuthorizationPolicyEntry) => boolean,
): Authorization[] {
  const out: Authorization[] = [];
  for (const p of policy.authorizationPolicies) {
    if (!match(p)) continue;
    const all = requirements(p, policy, td);
    if (all !== undefined) out.push({ name: `${p.namespace}/${p.name}`, all });
  }
  return out;
}

function inboundRoute(r: RouteEntry, policy: PolicyEntries, td: string): InboundRoute {
  const route: Route = {
    kind: r.kind === 'GRPCRoute' ? 'GRPC' : 'HTTP',
    name: `${r.namespace}/${r.name}`,
    rules: r.rules.map((rule) => ({
      name: rule.name ?? '',
      matches: rule.matches.map(matchMessage),
      filters: [],
      backends: [],
      request_timeout_ms: 0,
      backend_request_timeout_ms: 0,
    })),
  };
  const authorizations = authorizationsFor(
    policy,
    td,
    (p) => p.namespace === r.namespace && p.target.kind === r.kind && p.target.name === r.name,
  );
  return { route, authorizations };
}

function rateLimit(server: ServerEntry, policy: PolicyEntries, td: string): RateLimit | undefined {
  const rl = policy.rateLimits.find((x) => x.namespace === server.namespace && x.server === server.name);
  if (rl === undefined) return undefined;
  return {
    name: `${rl.namespace}/${rl.name}`,
    total_rps: rl.total ?? 0,
    identity_rps: rl.identity ?? 0,
    overrides: rl.overrides.map((o) => ({
      rps: o.requestsPerSecond,
      identities: o.serviceAccounts.map((sa) => `spiffe://${td}/ns/${sa.namespace}/sa/${sa.name}`),
    })),
  };
}

/** The policy of `namespace/pod`; `known: false` when the snapshot has no such pod. */
export function inboundPolicy(s: StoreSnapshot, namespace: string, podName: string, o: PolicySettings): InboundPolicy {
  const pod = s.pods.find((p) => p.namespace === namespace && p.name === podName);
  const defaultPolicy = pod?.defaultInboundPolicy ?? o.defaultPolicy;
  const base = {
    default_policy: defaultPolicy,
    default_authorizations: defaultAuthorizations(defaultPolicy, o.clusterNetworks),
  };
  if (pod === undefined) return { known: false, ...base, ports: [] };
  const policy = s.policy ?? NO_POLICY;
  const td = o.trustDomain;
  const ports: PortPolicy[] = [];
  for (const [port, server] of [...podServers(policy, pod)].sort((a, b) => a[0] - b[0])) {
    const authorizations = authorizationsFor(
      policy,
      td,
      (p) =>
        p.namespace === server.namespace &&
        ((p.target.kind === 'Server' && p.target.name === server.name) || p.target.kind === 'Namespace'),
    );
    const routes = (s.routes ?? [])
      .filter(
        (r) => r.namespace === server.namespace && r.parents.some((p) => p.kind === 'Server' && p.name === server.name),
      )
      .map((r) => inboundRoute(r, policy, td));
    const rl = rateLimit(server, policy, td);
    ports.push({
      port,
      server: `${server.namespace}/${server.name}`,
      protocol: server.proxyProtocol,
      authorizations,
      routes,
      ...(rl !== undefined ? { rate_limit: rl } : {}),
    });
  }
  return { known: true, ...base, ports };
}
