// What every load balancer offers the outbound stack: the endpoints it chooses among (from discovery),
// one pick per request (HTTP) or per connection (opaque TCP), and the start and end of each piece of
// work so that it can learn from latency and load. The one contract every balancer keeps is in
// contract.ts.
import type { ServerAddr } from '../../core/addr.js';

/** What the control plane says about an endpoint's port (see destination.proto). */
export type ProtocolHint = 'UNKNOWN' | 'HTTP1' | 'H2' | 'OPAQUE';

export interface EndpointInfo {
  readonly addr: ServerAddr;
  /** `addr` as `host:port` (`[v6]:port`): the endpoint's identity within a balancer. */
  readonly key: string;
  /** Relative share of traffic, > 0 (1 for every endpoint for now). */
  readonly weight: number;
  /** The server's SPIFFE id when it is meshed (mTLS verifies it); undefined otherwise. */
  readonly identity: string | undefined;
  readonly protocolHint: ProtocolHint;
  readonly meshed: boolean;
  /** `namespace/name` of the pod. */
  readonly pod: string;
  /** Who the endpoint is, for metrics labels (dst_*) and tap; absent in tests and benchmarks. */
  readonly meta?: EndpointMeta;
}

/** Who an endpoint is: made once per endpoint and answer, so that the hot path only passes it on. */
export interface EndpointMeta {
  /** Identifies the label set (namespace, workload, pod, service) as one string. */
  readonly key: string;
  readonly namespace: string;
  /** The Deployment that owns the pod, "" when none. */
  readonly workload: string;
  /** The pod's name. */
  readonly pod: string;
  /** The Service's name the endpoint was reached through ("" for a pod IP). */
  readonly service: string;
}

export interface Endpoint extends EndpointInfo {
  /** Work started and not yet ended. */
  readonly pending: number;
  /** Call when sending work to the endpoint; returns the start time to pass to end(). */
  begin(): number;
  /** Call once per begin() when the work ends (ok: a response came, whatever its status, or the
   *  connection was served; false: it failed). */
  end(start: number, ok: boolean): void;
}

export interface Balancer {
  /** Sets the endpoints to choose among; endpoints that remain (same key and info) keep their stats
   *  and their Endpoint object. */
  update(endpoints: readonly EndpointInfo[]): void;
  /** The endpoint for the next piece of work; undefined when there are none. */
  pick(): Endpoint | undefined;
  /** The current endpoints. */
  readonly endpoints: readonly Endpoint[];
}

/** Time and chance, injectable so that tests and simulations are deterministic. */
export interface BalancerEnv {
  /** Milliseconds from an arbitrary origin, monotonic (performance.now by default). */
  readonly now?: () => number;
  /** Numbers in [0, 1) (Math.random by default). */
  readonly random?: () => number;
}

export type BalancerFactory = (env?: BalancerEnv) => Balancer;
