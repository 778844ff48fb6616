// What the proxy tells observers (tap, tracing, the access log) about one finished request, and the one
// switch the hot path checks: `Observer.active` is false unless someone taps, a trace collector or an
// access log is configured, so that a request nobody observes builds no event and no JSON.
import type { DstMeta } from '../metrics.js';
import type { Direction } from '../metrics.js';

/** This side's span of a request (made and propagated by trace.ts; here because every event carries it). */
export interface TraceContext {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 hex digits: this proxy's span, the parent the next hop sees. */
  readonly spanId: string;
  /** The caller's span ("" when this proxy started the trace). */
  readonly parentSpanId: string;
  /** The sampled flag: unsampled traces are propagated but not exported. */
  readonly sampled: boolean;
}

/** One finished exchange, as the HTTP/1 and HTTP/2 servers saw it. Built only when Observer.active. */
export interface RequestEvent {
  /** Wall-clock start (ms since the epoch). */
  readonly startMs: number;
  readonly direction: Direction;
  /** The client, `ip:port`. */
  readonly src: string;
  /** Where the request went: the endpoint (outbound) or the app's address (inbound), `ip:port`. */
  readonly dst: string;
  /** Mesh TLS carried it (inbound: from the client proxy; outbound: to the server proxy). */
  readonly tls: boolean;
  readonly clientId: string;
  readonly serverId: string;
  readonly method: string;
  readonly authority: string;
  /** The request target as received (path and query). */
  readonly path: string;
  /** 0: no response (reset, client gone). */
  readonly status: number;
  readonly grpcStatus: number | undefined;
  /** Why an answer that began did not end whole (a proxy error's short code, "reset", "cancelled"). */
  readonly failure: string | undefined;
  readonly latencyMs: number;
  /** The route rule's `namespace/name`, or "default". */
  readonly route: string;
  readonly dstMeta: DstMeta;
  /** The request's header fields, flat: name, value, name, value... */
  readonly fields: readonly string[];
  /** Tracing on: this side's span. */
  readonly trace: TraceContext | undefined;
}

/** A consumer of events. */
export interface EventSink {
  emit(ev: RequestEvent): void;
}

/** The `path` of a request target without its query (tap filters and span names use it). */
export function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}
