// The policy API (policy.proto) for TypeScript: the messages as both sides see them (snake_case field
// names, absent fields at their defaults), the Watch call, and what each default inbound policy allows
// (shared by the control plane and the proxy's fallback). The server's definition is in load.ts.
import type { Route } from './destination.js';
import type { Call, CallHandlers, GrpcChannel, Method } from './grpc/channel.js';
import type { DefaultPolicyName } from './policy-names.js';
import { API } from './proto/registry.js';

export { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from './policy-names.js';

export interface WatchInbound {
  namespace: string;
  pod: string;
}

export interface Network {
  cidr: string;
  except: string[];
}

export interface Requirement {
  identities: string[];
  networks: Network[];
}

export interface Authorization {
  name: string;
  all: Requirement[];
}

export interface InboundRoute {
  route: Route | null;
  authorizations: Authorization[];
}

export interface RateOverride {
  rps: number;
  identities: string[];
}

export interface RateLimit {
  name: string;
  total_rps: number;
  identity_rps: number;
  overrides: RateOverride[];
}

export interface PortPolicy {
  port: number;
  server: string;
  protocol: string;
  authorizations: Authorization[];
  routes: InboundRoute[];
  rate_limit?: RateLimit | null;
}

export interface InboundPolicy {
  known: boolean;
  default_policy: string;
  default_authorizations: Authorization[];
  ports: PortPolicy[];
}

/** What a default inbound policy allows, as authorizations. `clusterNetworks`: the mesh's pod networks
 *  (cluster-authenticated); empty: any address. */
export function defaultAuthorizations(policy: DefaultPolicyName, clusterNetworks: readonly string[]): Authorization[] {
  const name = `default:${policy}`;
  switch (policy) {
    case 'all-unauthenticated':
      return [{ name, all: [] }];
    case 'all-authenticated':
      return [{ name, all: [{ identities: ['*'], networks: [] }] }];
    case 'cluster-authenticated':
      return [
        {
          name,
          all: [
            { identities: ['*'], networks: [] },
            ...(clusterNetworks.length > 0
              ? [{ identities: [], networks: clusterNetworks.map((cidr) => ({ cidr, except: [] })) }]
              : []),
          ],
        },
      ];
    case 'deny':
      return [];
  }
}

export const POLICY_WATCH: Method<WatchInbound, InboundPolicy> = API.method('/outrigger.policy.v1.Policy/Watch');

/** Watches the inbound policy of a pod: every InboundPolicy as it comes (each the whole policy), then
 *  how the stream ended. */
export function watchInboundPolicy(
  channel: GrpcChannel,
  pod: WatchInbound,
  handlers: CallHandlers<InboundPolicy>,
): Call {
  return channel.call(POLICY_WATCH, pod, handlers);
}
