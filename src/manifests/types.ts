// The typed objects a successful load (the runtime's loader, the kubernetes store's conversion) produces: each kind's validated document (with Kubernetes'
// defaults applied), where it came from, and its parsed outrigger annotations.
import type { MeshAnnotations } from './annotations.js';
import type { PortList } from '../core/ports.js';
import type {
  AuthorizationPolicyDoc,
  HTTPLocalRateLimitPolicyDoc,
  MeshTLSAuthenticationDoc,
  NetworkAuthenticationDoc,
  ServerDoc,
} from './policy.js';
import type {
  DeploymentDoc,
  GRPCRouteDoc,
  HTTPRouteDoc,
  NamespaceDoc,
  PodDoc,
  ServiceAccountDoc,
  ServiceDoc,
  ServicePort,
} from './schema.js';

/** Where a document came from: the file as the caller named it and its 1-based document index. */
export interface Source {
  readonly file: string;
  readonly document: number;
}

export type NamespaceObject = NamespaceDoc & { readonly source: Source; readonly mesh: MeshAnnotations };

export type PodObject = PodDoc & { readonly source: Source; readonly mesh: MeshAnnotations };

/** `mesh` holds the pod template's annotations (the Deployment's own may not carry ours). */
export type DeploymentObject = DeploymentDoc & { readonly source: Source; readonly mesh: MeshAnnotations };

/** A Service port with `targetPort` defaulted to `port`, as Kubernetes does. */
export type ResolvedServicePort = ServicePort & { targetPort: number | string };

export type ServiceObject = Omit<ServiceDoc, 'spec'> & {
  spec: Omit<ServiceDoc['spec'], 'ports'> & { ports: ResolvedServicePort[] };
  readonly source: Source;
  /** From the Service's `config.outrigger.io/opaque-ports`; empty when not set. */
  readonly opaquePorts: PortList;
};

export type ServiceAccountObject = ServiceAccountDoc & { readonly source: Source };

/** A route's retries, from its `retry.outrigger.io/*` annotations (see routes.ts for why annotations). */
export interface RetryPolicy {
  /** Retries after the first attempt, 1 to 10. */
  readonly attempts: number;
  /** HTTP response statuses that are retried, as inclusive ranges (HTTPRoute only). */
  readonly statuses: readonly (readonly [number, number])[];
  /** gRPC status codes that are retried (GRPCRoute only). */
  readonly grpcCodes: readonly number[];
  /** The connection to the endpoint could not be made (nothing was sent: always safe to retry). */
  readonly connectFailure: boolean;
  /** The connection failed after the request was sent and before a response head came. */
  readonly reset: boolean;
  /** A backendRequest timeout expired before a response head came. */
  readonly timeout: boolean;
}

/** A route as the mesh's status shows it (`routes`, the dashboard): its parent Services and the
 *  weighted backends of its widest rule (a canary's split). */
export interface RouteView {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly parents: readonly string[];
  readonly backends: readonly { readonly service: string; readonly weight: number }[];
}

export type HTTPRouteObject = HTTPRouteDoc & { readonly source: Source; readonly retry: RetryPolicy | undefined };

export type GRPCRouteObject = GRPCRouteDoc & { readonly source: Source; readonly retry: RetryPolicy | undefined };

export type RouteObject = HTTPRouteObject | GRPCRouteObject;

export type ServerObject = ServerDoc & { readonly source: Source };
export type AuthorizationPolicyObject = AuthorizationPolicyDoc & { readonly source: Source };
export type MeshTLSAuthenticationObject = MeshTLSAuthenticationDoc & { readonly source: Source };
export type NetworkAuthenticationObject = NetworkAuthenticationDoc & { readonly source: Source };
export type HTTPLocalRateLimitPolicyObject = HTTPLocalRateLimitPolicyDoc & { readonly source: Source };
/** The policy kinds (policy.outrigger.io/v1beta1). */
export type PolicyObject =
  | ServerObject
  | AuthorizationPolicyObject
  | MeshTLSAuthenticationObject
  | NetworkAuthenticationObject
  | HTTPLocalRateLimitPolicyObject;

export type ManifestObject =
  NamespaceObject | PodObject | DeploymentObject | ServiceObject | ServiceAccountObject | RouteObject | PolicyObject;

/** Everything the files described, in file order, and by kind. */
export interface ManifestSet {
  readonly objects: readonly ManifestObject[];
  readonly namespaces: readonly NamespaceObject[];
  readonly pods: readonly PodObject[];
  readonly deployments: readonly DeploymentObject[];
  readonly services: readonly ServiceObject[];
  readonly serviceAccounts: readonly ServiceAccountObject[];
  /** Always set by parseManifests; optional only so that sets built by hand (an empty one) need not
   *  list them. */
  readonly httpRoutes?: readonly HTTPRouteObject[];
  readonly grpcRoutes?: readonly GRPCRouteObject[];
  /** The policy kinds, in file order; optional for the same reason. */
  readonly policies?: readonly PolicyObject[];
}

/** A set that holds nothing (a mesh before its first manifests), or only what `only` gives it. */
export function manifestSet(only: Partial<ManifestSet> = {}): ManifestSet {
  return {
    objects: [],
    namespaces: [],
    pods: [],
    deployments: [],
    services: [],
    serviceAccounts: [],
    httpRoutes: [],
    grpcRoutes: [],
    policies: [],
    ...only,
  };
}

/** `namespace/name`, or `name` for a Namespace. */
export function objectKey(o: ManifestObject): string {
  return o.kind === 'Namespace' ? o.metadata.name : `${o.metadata.namespace}/${o.metadata.name}`;
}
