// The destination API (destination.proto) for TypeScript: the messages as both sides see them
// (snake_case field names, enums as their names, absent fields at their defaults: proto-loader's
// objects on the control plane, the same shape from proto/wire.ts in the proxy), and the Get watch.
// The server's definition is in load.ts (grpc-js), which the proxy never loads.
import type { Call, CallHandlers, GrpcChannel, Method } from './grpc/channel.js';
import { API } from './proto/registry.js';

export type ProtocolHint = 'UNKNOWN' | 'HTTP1' | 'H2' | 'OPAQUE';

export interface GetDestination {
  path: string;
}

export interface Endpoint {
  addr: string;
  weight: number;
  identity: string;
  protocol_hint: ProtocolHint;
  meshed: boolean;
  pod: string;
  /** The Deployment that owns the pod; absent (or "" as a client receives it) for a bare pod. */
  workload?: string;
}

export interface Update {
  known: boolean;
  service: string;
  endpoints: Endpoint[];
  /** Absent in what the server writes when there are none; [] as a client receives it. */
  routes?: Route[];
  backends?: Backend[];
}

export type RouteKind = 'HTTP' | 'GRPC';
export type PathMatchType = 'EXACT' | 'PREFIX' | 'REGEX';
export type ValueMatchType = 'EXACT' | 'REGEX';
export type FilterType =
  'REQUEST_HEADER_MODIFIER' | 'RESPONSE_HEADER_MODIFIER' | 'REQUEST_MIRROR' | 'URL_REWRITE' | 'REQUEST_REDIRECT';
export type PathModifierType = 'REPLACE_FULL_PATH' | 'REPLACE_PREFIX_MATCH';

export interface Route {
  kind: RouteKind;
  /** `namespace/name`. */
  name: string;
  rules: Rule[];
}

export interface Rule {
  name: string;
  matches: Match[];
  filters: Filter[];
  backends: WeightedBackend[];
  /** ms; 0: none. */
  request_timeout_ms: number;
  /** ms; 0: none. */
  backend_request_timeout_ms: number;
  /** null or absent: no retries. */
  retry?: Retry | null;
}

export interface Match {
  /** Set for HTTP. */
  path?: PathMatch | null;
  /** "" for any. */
  method: string;
  headers: ValueMatch[];
  query_params: ValueMatch[];
  /** gRPC; null or absent: any method. */
  grpc_method?: GrpcMethodMatch | null;
}

export interface PathMatch {
  type: PathMatchType;
  value: string;
}

export interface ValueMatch {
  type: ValueMatchType;
  name: string;
  value: string;
}

export interface GrpcMethodMatch {
  type: ValueMatchType;
  service: string;
  method: string;
}

export interface Header {
  name: string;
  value: string;
}

export interface HeaderModifier {
  set: Header[];
  add: Header[];
  remove: string[];
}

export interface PathModifier {
  type: PathModifierType;
  value: string;
}

/** `type` says which of the other fields is set (both header modifiers use header_modifier). */
export interface Filter {
  type: FilterType;
  header_modifier?: HeaderModifier | null;
  mirror?: { backend: string; numerator: number; denominator: number } | null;
  url_rewrite?: { hostname: string; path?: PathModifier | null } | null;
  redirect?: { scheme: string; hostname: string; path?: PathModifier | null; port: number; status_code: number } | null;
}

export interface Retry {
  attempts: number;
  statuses: { from: number; to: number }[];
  grpc_codes: number[];
  connect_failure: boolean;
  reset: boolean;
  timeout: boolean;
}

export interface WeightedBackend {
  /** A Backend.service of the same Update. */
  backend: string;
  weight: number;
}

export interface Backend {
  /** `name.namespace.svc.cluster.local:port`. */
  service: string;
  exists: boolean;
  endpoints: Endpoint[];
}

export const DESTINATION_GET: Method<GetDestination, Update> = API.method('/outrigger.destination.v1.Destination/Get');

/** Watches `path` (see destination.proto): every Update as it comes (each the whole answer), then how
 *  the stream ended. */
export function watchDestination(channel: GrpcChannel, path: string, handlers: CallHandlers<Update>): Call {
  return channel.call(DESTINATION_GET, { path }, handlers);
}
