// The policy API (policy.proto) for TypeScript: the messages as the loader gives them (snake_case
// field names, absent fields at their defaults), the service definition a server adds, a client, and
// what each default inbound policy allows (shared by the control plane and the proxy's fallback).
import grpc from '@grpc/grpc-js';
import { formatAddr, type SocketAddr } from '../core/addr.js';
import type { Route } from './destination.js';
import { WATCH_CHANNEL_OPTIONS } from './destination.js';
import { loadService } from './load.js';

export const POLICY_SERVICE = 'outrigger.policy.v1.Policy';

export type DefaultPolicyName = 'all-unauthenticated' | 'all-authenticated' | 'cluster-authenticated' | 'deny';
export const DEFAULT_POLICY_NAMES: readonly DefaultPolicyName[] = ['all-unauthenticated', 'all-authenticated', 'cluster-authenticated', 'deny'];

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
            ...(clusterNetworks.length > 0 ? [{ identities: [], networks: clusterNetworks.map((cidr) => ({ cidr, except: [] })) }] : []),
          ],
        },
      ];
    case 'deny':
      return [];
  }
}

export interface PolicyClient extends grpc.Client {
  Watch(request: WatchInbound, options?: grpc.CallOptions): grpc.ClientReadableStream<InboundPolicy>;
}

export interface PolicyHandlers extends grpc.UntypedServiceImplementation {
  Watch: grpc.handleServerStreamingCall<WatchInbound, InboundPolicy>;
}

function ctor(): grpc.ServiceClientConstructor {
  return loadService('policy.proto', POLICY_SERVICE);
}

export function policyServiceDefinition(): grpc.ServiceDefinition {
  return ctor().service;
}

/** A plaintext client of the policy service at `addr`. */
export function policyClient(addr: SocketAddr | string, options: grpc.ChannelOptions = WATCH_CHANNEL_OPTIONS): PolicyClient {
  const Client = ctor();
  const target = typeof addr === 'string' ? addr : formatAddr(addr);
  return new Client(target, grpc.credentials.createInsecure(), options) as unknown as PolicyClient;
}
