// What the control plane's servers read: Services (with their virtual IPs and resolved endpoints) and
// pods, as one immutable snapshot that is replaced whole on every change. The local runtime computes
// snapshots from its manifests and pods; a Kubernetes store will compute them from watches. Every
// server (destination, identity, policy) reads only this interface.
import type { DefaultPolicyName } from '../../api/policy-names.js';
import type { PortList } from '../../core/ports.js';
import type { LabelSelector } from '../../manifests/labels.js';
import type { RetryPolicy } from '../../manifests/types.js';

export interface ServicePortEntry {
  readonly name?: string;
  /** The port clients connect to on the Service's virtual IP. */
  readonly port: number;
  /** `appProtocol` from the manifest (e.g. `http`, `kubernetes.io/h2c`, `grpc`), when given. */
  readonly appProtocol?: string;
  /** The Service's config.outrigger.io/opaque-ports lists this port: clients treat it as opaque TCP. */
  readonly opaque?: boolean;
}

export interface EndpointEntry {
  /** `namespace/name` of the pod behind it. */
  readonly pod: string;
  readonly ip: string;
  /** Service port → the pod's port for it (a named targetPort is resolved per pod). */
  readonly ports: Readonly<Record<number, number>>;
  /** Ready pods receive traffic; the others are listed so that a change of readiness is an update. */
  readonly ready: boolean;
}

export interface ServiceEntry {
  readonly namespace: string;
  readonly name: string;
  /** The virtual IP, from the service CIDR. */
  readonly clusterIP: string;
  readonly ports: readonly ServicePortEntry[];
  readonly endpoints: readonly EndpointEntry[];
}

// ---- routes (Gateway API HTTPRoute and GRPCRoute, normalised) ------------------------------------
// Gateway API's defaults are applied (every HTTP match has a path; a rule without matches gets the
// match-everything one), durations are milliseconds, and every Service named is in the route's
// namespace (the manifests refuse others), so references are plain names.

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';
export type ValueMatchType = 'Exact' | 'RegularExpression';

export interface ValueMatchEntry {
  readonly type: ValueMatchType;
  /** A header name (compared case-insensitively) or a query parameter name (case-sensitive). */
  readonly name: string;
  /** The value, or a regular expression that must match all of it. */
  readonly value: string;
}

export interface RouteMatchEntry {
  /** HTTPRoute only, and always set there (default PathPrefix "/"). */
  readonly path?: { readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'; readonly value: string };
  /** HTTPRoute only: the request method, when the match names one. */
  readonly method?: string;
  readonly headers: readonly ValueMatchEntry[];
  /** HTTPRoute only. */
  readonly queryParams: readonly ValueMatchEntry[];
  /** GRPCRoute only: the service and method (either may be absent: any). */
  readonly grpcMethod?: { readonly type: ValueMatchType; readonly service?: string; readonly method?: string };
}

export interface HeaderEntry {
  readonly name: string;
  readonly value: string;
}

export interface PathModifierEntry {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  readonly value: string;
}

/** A Service port in the route's namespace. */
export interface BackendRefEntry {
  readonly name: string;
  readonly port: number;
}

export type RouteFilterEntry =
  | {
      readonly type: 'RequestHeaderModifier' | 'ResponseHeaderModifier';
      readonly set: readonly HeaderEntry[];
      readonly add: readonly HeaderEntry[];
      readonly remove: readonly string[];
    }
  /** Mirrors numerator/denominator of requests (100/100 when the manifest gives no share). */
  | {
      readonly type: 'RequestMirror';
      readonly backend: BackendRefEntry;
      readonly numerator: number;
      readonly denominator: number;
    }
  | { readonly type: 'URLRewrite'; readonly hostname?: string; readonly path?: PathModifierEntry }
  | {
      readonly type: 'RequestRedirect';
      readonly scheme?: 'http' | 'https';
      readonly hostname?: string;
      readonly path?: PathModifierEntry;
      readonly port?: number;
      readonly statusCode: number;
    };

export interface RouteRuleEntry {
  readonly name?: string;
  /** Never empty: any one of them selects the rule. */
  readonly matches: readonly RouteMatchEntry[];
  readonly filters: readonly RouteFilterEntry[];
  /** Weighted backends; empty (with no redirect) means the rule answers 500, as Gateway API says. */
  readonly backends: readonly (BackendRefEntry & { readonly weight: number })[];
  /** The whole request, retries included (ms); absent or 0: no timeout. */
  readonly requestTimeoutMs?: number;
  /** Each attempt (ms); absent or 0: no timeout. */
  readonly backendRequestTimeoutMs?: number;
  /** The route's retry.outrigger.io annotations, parsed (manifests/types.ts). */
  readonly retry?: RetryPolicy;
}

export interface RouteEntry {
  readonly kind: RouteKind;
  readonly namespace: string;
  readonly name: string;
  /** The Services (in `namespace`) it attaches to; `port` absent: every port of the Service. With
   *  `kind: 'Server'`, a Server (policy.outrigger.io) instead: an inbound route, which authorization
   *  policies can target (the destination service ignores those). */
  readonly parents: readonly { readonly name: string; readonly port?: number; readonly kind?: 'Server' }[];
  readonly rules: readonly RouteRuleEntry[];
}

export interface PodEntry {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly ready: boolean;
  /** Whether a proxy runs beside the app (so it has a mesh identity and terminates mTLS). */
  readonly meshed: boolean;
  readonly serviceAccount: string;
  /** Ports whose traffic the pod's proxy treats as opaque TCP (config.outrigger.io/opaque-ports). */
  readonly opaquePorts: PortList;
  readonly labels: Readonly<Record<string, string>>;
  /** The containers' declared ports (a Server may name one). Absent: none known. */
  readonly ports?: readonly { readonly name?: string; readonly containerPort: number }[];
  /** config.outrigger.io/default-inbound-policy of the pod, else of its namespace; absent: the mesh's. */
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
  /** The workload that owns the pod (a Deployment's name), for metrics and tap; absent for a bare pod. */
  readonly workload?: string;
}

// ---- policy (policy.outrigger.io/v1beta1, normalised) -----------------------------------------
// The policy kinds as the policy service reads them: defaults applied, every reference resolved to a
// namespace. src/manifests/policy.ts has the manifests' schemas and docs/policy.md the meaning.

export type DefaultInboundPolicy = DefaultPolicyName;

/** A label selector, as manifests/labels.ts defines (and matches) it. */
export type LabelSelectorEntry = LabelSelector;

export interface ServerEntry {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelectorEntry;
  /** A container port number, or the name of one. */
  readonly port: number | string;
  readonly proxyProtocol: 'unknown' | 'HTTP/1' | 'HTTP/2' | 'gRPC' | 'opaque' | 'TLS';
}

export interface AuthorizationPolicyEntry {
  readonly namespace: string;
  readonly name: string;
  /** A Server, an inbound route (by name, in `namespace`) or the Namespace `namespace` itself. */
  readonly target: { readonly kind: 'Server' | 'HTTPRoute' | 'GRPCRoute' | 'Namespace'; readonly name: string };
  /** All must accept the client; empty: every client. */
  readonly authentications: readonly {
    readonly kind: 'MeshTLSAuthentication' | 'NetworkAuthentication' | 'ServiceAccount';
    readonly namespace: string;
    readonly name: string;
  }[];
}

export interface MeshTLSAuthenticationEntry {
  readonly namespace: string;
  readonly name: string;
  /** SPIFFE ids with `*` wildcards, or `*` (any authenticated client). */
  readonly identities: readonly string[];
  /** `name` '*' with kind Namespace: every namespace. */
  readonly identityRefs: readonly {
    readonly kind: 'ServiceAccount' | 'Namespace';
    readonly namespace: string;
    readonly name: string;
  }[];
}

export interface NetworkAuthenticationEntry {
  readonly namespace: string;
  readonly name: string;
  readonly networks: readonly { readonly cidr: string; readonly except: readonly string[] }[];
}

export interface RateLimitEntry {
  readonly namespace: string;
  readonly name: string;
  /** The Server (in `namespace`). */
  readonly server: string;
  /** Requests per second; absent: no such limit. */
  readonly total?: number;
  readonly identity?: number;
  readonly overrides: readonly {
    readonly requestsPerSecond: number;
    readonly serviceAccounts: readonly { readonly namespace: string; readonly name: string }[];
  }[];
}

export interface PolicyEntries {
  readonly servers: readonly ServerEntry[];
  readonly authorizationPolicies: readonly AuthorizationPolicyEntry[];
  readonly meshTLSAuthentications: readonly MeshTLSAuthenticationEntry[];
  readonly networkAuthentications: readonly NetworkAuthenticationEntry[];
  readonly rateLimits: readonly RateLimitEntry[];
}

export interface StoreSnapshot {
  /** Increases with every change. */
  readonly version: number;
  readonly services: readonly ServiceEntry[];
  readonly pods: readonly PodEntry[];
  /** HTTPRoutes and GRPCRoutes, sorted by namespace and name (Gateway API's tie-break between routes
   *  of equal precedence, as the local runtime has no creation times). Absent: none. */
  readonly routes?: readonly RouteEntry[];
  /** The policy objects. Absent: none. */
  readonly policy?: PolicyEntries;
}

export interface Store {
  /** The current snapshot (never mutated; a change replaces it). */
  snapshot(): StoreSnapshot;
  /** Calls `fn` after every change; returns the function that stops it. */
  subscribe(fn: (s: StoreSnapshot) => void): () => void;
}

/** The order every store keeps its entries in: by namespace, then by name (so that snapshots compare). */
export function byNamespaceName(
  a: { namespace: string; name: string },
  b: { namespace: string; name: string },
): number {
  if (a.namespace !== b.namespace) return a.namespace < b.namespace ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
