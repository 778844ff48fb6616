// The proxy's Prometheus metrics, with the names existing mesh dashboards use. Per-request figures are
// plain numbers in RouteStats (no label hashing per request) rendered at scrape time; byte counters are
// read from the sockets when Prometheus scrapes, not counted per chunk.
import type { TrustAnchorView } from './identity/bundle.js';
import type { Socket } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ProxyError } from './errors/errors.js';
import { H2Metrics } from './metrics-h2.js';

export type Direction = 'inbound' | 'outbound';

/** Latency buckets in ms: sub-millisecond up to tens of seconds. */
const LATENCY_BUCKETS_MS = [
  0.25, 0.5, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 5000, 10000, 30000,
];
/** Label sets kept before new ones are folded into authority="overflow" (HTTP) or target_addr="overflow" (TCP). */
const MAX_ROUTES = 4096;

const TCP_LABELS = ['direction', 'target_addr'] as const;
/** Labels added to the request and TCP metrics when mTLS is on: tls="true" | "no_identity" and the peer's
 *  identity (client_id inbound, server_id outbound; "" without one). Identities are service accounts, so
 *  they add few label sets; the MAX_ROUTES cap still holds. */
const TLS_LABELS = ['tls', 'client_id', 'server_id'] as const;
type TcpLabel = (typeof TCP_LABELS)[number] | (typeof TLS_LABELS)[number];

export interface ProxyMetricsOptions {
  /** mTLS is on (the proxy has an identity): add the TLS labels and the identity and handshake metrics.
   *  Off, every label set is what it was before mTLS existed. */
  readonly tls?: boolean;
  /** The proxy's own pod (the dst_* labels of inbound requests); NO_DST when not told. */
  readonly self?: DstMeta;
}

/** The peer label for a direction: who the client (inbound) or the server (outbound) proved to be. */
function tlsLabels(direction: Direction, peer: string | undefined): Record<string, string> {
  return {
    tls: peer === undefined ? 'no_identity' : 'true',
    [direction === 'inbound' ? 'client_id' : 'server_id']: peer ?? '',
  };
}

/** The destination's workload labels of the route_* family: an endpoint's (outbound) or the proxy's
 *  own pod's (inbound). */
export interface DstMeta {
  /** Identifies the label set as one string (made once per endpoint, never per request). */
  readonly key: string;
  readonly namespace: string;
  readonly workload: string;
  readonly pod: string;
  readonly service: string;
}

/** How often the event-loop delay histogram (prom-client's `nodejs_eventloop_lag_*`) takes a sample,
 *  in ms. prom-client's default of 10 ms is a timer firing 100 times a second: about 6 ms of CPU a
 *  second in a proxy that carries no traffic (bench/proxy-memory.ts), paid once per pod. Sampled once
 *  a second it costs next to nothing; the figures are then how late a 1 s timer fired, which shows
 *  long stalls but misses most short ones (`response_latency_ms` shows what requests felt). */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** prom-client's `process_*` and `nodejs_*` metrics in `registry`, sampling the event loop as above. */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
}

/** No known destination (no endpoint was picked, a passthrough, or past the label cap). */
export const NO_DST: DstMeta = Object.freeze({ key: '', namespace: '', workload: '', pod: '', service: '' });
const OVERFLOW_DST: DstMeta = Object.freeze({
  key: '\0overflow',
  namespace: 'overflow',
  workload: 'overflow',
  pod: 'overflow',
  service: 'overflow',
});

function dstLabels(d: DstMeta): Record<string, string> {
  return { dst_namespace: d.namespace, dst_deployment: d.workload, dst_pod: d.pod, dst_service: d.service };
}

/** A proxy error as request_errors_total's `error` label (and tap's `failure`) name it: its code, short. */
export function errorLabel(err: ProxyError): string {
  return err.code.replace(/^OUTR_ERR_/, '').toLowerCase();
}

/** The classification every metric, tap event and span shares: no response, a 5xx, a gRPC status
 *  other than OK, or an answer that did not end whole is a failure. */
export function isFailure(status: number, grpcStatus: number | undefined, cut: boolean): boolean {
  return cut || status === 0 || status >= 500 || (grpcStatus !== undefined && grpcStatus !== 0);
}

/** One response label set: its count and latency histogram, as plain numbers (rendered at scrape time). */
interface ResponseCell {
  /** status_code, grpc_status_code, classification. */
  readonly status: Record<string, string>;
  /** The route_* family's labels: the RouteStats' labels and `status`. */
  readonly labels: Record<string, string>;
  count: number;
  sum: number;
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/**
 * Per (direction, target, authority, peer, route, destination workload): what a request touches. Plain
 * fields, no label hashing on the hot path; ProxyMetrics renders them when Prometheus scrapes, as the
 * route_* family (one series per RouteStats) and as the older request_total family (summed over the
 * destinations of one RouteGroup).
 */
export class RouteStats {
  count = 0;
  /** Keyed by status * 1000 + gRPC status (+ 999 when not gRPC). */
  readonly cells = new Map<number, ResponseCell>();
  readonly requests = { inc: () => void this.count++ };
  /** The route_* family's labels: direction, target_addr, authority, (tls, client_id, server_id),
   *  route ("default" when no route rule chose it) and dst_namespace, dst_deployment, dst_pod, dst_service. */
  constructor(
    readonly labels: Readonly<Record<string, string>>,
    readonly dst: DstMeta,
    /** The `route` label ("default" without a route rule). */
    readonly route: string,
  ) {}

  /**
   * Records one finished exchange. grpcStatus is undefined for plain HTTP; status 0 means no response;
   * `cut`: the answer did not end whole (reset or cut off after its head), whatever its status said.
   */
  response(status: number, latencyMs: number, grpcStatus?: number, cut = false): void {
    const key = (status * 1000 + (grpcStatus === undefined ? 999 : grpcStatus)) * 2 + (cut ? 1 : 0);
    let c = this.cells.get(key);
    if (!c) {
      const failure = isFailure(status, grpcStatus, cut);
      const st = {
        status_code: status === 0 ? '' : String(status),
        grpc_status_code: grpcStatus === undefined ? '' : String(grpcStatus),
        classification: failure ? 'failure' : 'success',
      };
      c = {
        status: st,
        labels: { ...this.labels, ...st },
        count: 0,
        sum: 0,
        buckets: new Float64Array(LATENCY_BUCKETS_MS.length + 1),
      };
      this.cells.set(key, c);
    }
    c.count++;
    c.sum += latencyMs;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && latencyMs > (LATENCY_BUCKETS_MS[i] as number)) i++;
    (c.buckets[i] as number)++;
  }
}

/** One label set of the request_total family: the RouteStats of its destinations. */
class RouteGroup {
  /** By DstMeta.key. */
  readonly byDst = new Map<string, RouteStats>();
  constructor(
    /** direction, target_addr, authority; (tls, client_id, server_id); route when routed. */
    readonly labels: Readonly<Record<string, string>>,
    readonly route: string,
  ) {}
}

function pushHistogram(
  out: Sample[],
  name: string,
  labels: Record<string, string>,
  buckets: Float64Array,
  count: number,
  sum: number,
): void {
  let acc = 0;
  LATENCY_BUCKETS_MS.forEach((le, i) => {
    acc += buckets[i] as number;
    out.push({ metricName: `${name}_bucket`, value: acc, labels: { le, ...labels } });
  });
  out.push({ metricName: `${name}_bucket`, value: count, labels: { le: '+Inf', ...labels } });
  out.push({ metricName: `${name}_sum`, value: sum, labels });
  out.push({ metricName: `${name}_count`, value: count, labels });
}

type Sample = { value: number; labels: Record<string, string | number>; metricName?: string };

/** A metric the prom-client registry can render, whose values come from `values()` at scrape time. */
function scrapeTimeMetric(name: string, help: string, type: 'counter' | 'histogram', values: () => Sample[]) {
  return {
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: () => Promise.resolve({ name, help, type, aggregator: 'sum' as const, values: values() }),
    reset: () => {},
  };
}

/** Per (direction, target): the connections of one listener toward one destination. */
export class TcpStats {
  readonly open = new Set<Socket>();
  closedRead = 0;
  closedWritten = 0;
  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly opened: { inc(): void },
    private readonly gauge: { inc(): void; dec(): void },
    private readonly m: ProxyMetrics,
  ) {}

  /** Counts the connection now and its close when it happens. */
  track(socket: Socket): void {
    this.opened.inc();
    this.gauge.inc();
    this.open.add(socket);
    socket.once('close', (hadError: boolean) => {
      this.open.delete(socket);
      this.closedRead += socket.bytesRead;
      this.closedWritten += socket.bytesWritten;
      this.gauge.dec();
      this.m.tcpCloseTotal.inc({ ...this.labels, errno: hadError ? 'error' : '' });
    });
  }
}

/** One label set of a CounterCells: a plain number. */
export class CounterCell {
  value = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
  inc(): void {
    this.value++;
  }
}

/** A counter whose label sets are taken once and kept (few: servers × routes × rules), and whose
 *  values are plain numbers read at scrape time. */
export class CounterCells {
  private readonly cells = new Map<string, CounterCell>();
  /** The cell of a label set (the same object every time). */
  labels(labels: Readonly<Record<string, string>>): CounterCell {
    const key = Object.values(labels).join('\0');
    let c = this.cells.get(key);
    if (c === undefined) this.cells.set(key, (c = new CounterCell(labels)));
    return c;
  }
  samples(): Sample[] {
    return [...this.cells.values()]
      .filter((c) => c.value > 0)
      .map((c) => ({ value: c.value, labels: { ...c.labels } }));
  }
}

/** The counters of inbound policy (ProxyMetrics.enablePolicy). */
export interface PolicyMetrics {
  readonly httpAllow: CounterCells;
  readonly httpDeny: CounterCells;
  readonly tcpAllow: CounterCells;
  readonly tcpDeny: CounterCells;
  readonly rateLimited: CounterCells;
}

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly tcpOpenTotal: Counter<TcpLabel>;
  readonly tcpCloseTotal: Counter<TcpLabel | 'errno'>;
  readonly tcpOpenConnections: Gauge<TcpLabel>;
  /** Mesh TLS handshakes that failed, by direction and reason (only with mTLS on). */
  readonly tlsHandshakeErrors: Counter<'direction' | 'reason'> | undefined;
  /** Mesh TLS handshakes that completed, by direction and resumed="true"|"false" (only with mTLS on). */
  readonly tlsHandshakes: Counter<'direction' | 'resumed' | 'group'> | undefined;
  readonly tls: boolean;
  readonly detectTimeoutTotal: Counter<'direction'>;
  readonly refusedTotal: Counter<'direction' | 'reason'>;
  /** Retries made by route retry policies; reason: what the failed attempt ended with. */
  readonly retryTotal: Counter<'direction' | 'target_addr' | 'route' | 'reason'>;
  /** Attempts a policy would retry that were not retried; reason: why not (the budget, attempts...). */
  readonly retrySkippedTotal: Counter<'direction' | 'target_addr' | 'route' | 'reason'>;
  /** Endpoints ejected by their circuit breaker (each ejection, re-ejections after a failed probe too). */
  readonly endpointEjectionsTotal: Counter<'direction' | 'target_addr' | 'backend'>;
  /** HTTP requests that waited for a slot of their destination's in-flight limit (result="queued"), or
   *  were refused with 503 because its queue was full (result="full"). */
  readonly requestQueueTotal: Counter<'direction' | 'target_addr' | 'result'>;
  /** HTTP requests (or HTTP/2 streams) the proxy ended with an error of its own, by its stable code:
   *  what each 4xx/5xx the proxy answered (or each response it cut) was. Plain numbers, read at scrape
   *  time; label sets: directions × destinations × the codes in errors/errors.ts. */
  readonly requestErrors = new CounterCells();
  /** Mirrored requests: result="sent" | "failed" | "dropped" (too many in flight). */
  readonly mirrorTotal: Counter<'direction' | 'target_addr' | 'result'>;
  /** The HTTP/2 connections of the own engine (./metrics-h2.ts): streams, resets, GOAWAYs, protocol
   *  errors by kind, frames, read from each connection's stats at close and at scrape time. */
  readonly h2: H2Metrics;
  private readonly groups = new Map<string, RouteGroup>();
  /** RouteStats made so far (bounded by MAX_ROUTES, then the overflow destination). */
  private statsCount = 0;
  /** The proxy's own pod: the destination of every inbound request. */
  private readonly self: DstMeta;
  private readonly tcp = new Map<string, TcpStats>();

  constructor(opts: ProxyMetricsOptions = {}) {
    this.tls = opts.tls === true;
    this.self = opts.self ?? NO_DST;
    const registers = [this.registry];
    const tcpLabels: TcpLabel[] = this.tls ? [...TCP_LABELS, ...TLS_LABELS] : [...TCP_LABELS];
    const groups = this.groups;
    const reg = (m: ReturnType<typeof scrapeTimeMetric>) => this.registry.registerMetric(m as unknown as Counter);
    // The older family: one series per RouteGroup, its destinations summed.
    const merged = () => {
      const out: { labels: Record<string, string>; count: number; sum: number; buckets: Float64Array }[] = [];
      for (const g of groups.values()) {
        const byStatus = new Map<number, (typeof out)[number]>();
        for (const r of g.byDst.values()) {
          for (const [k, c] of r.cells) {
            let m = byStatus.get(k);
            if (!m) {
              m = {
                labels: { ...g.labels, ...c.status },
                count: 0,
                sum: 0,
                buckets: new Float64Array(c.buckets.length),
              };
              byStatus.set(k, m);
              out.push(m);
            }
            m.count += c.count;
            m.sum += c.sum;
            for (let i = 0; i < c.buckets.length; i++) (m.buckets[i] as number) += c.buckets[i] as number;
          }
        }
      }
      return out;
    };
    const allStats = function* () {
      for (const g of groups.values()) yield* g.byDst.values();
    };
    reg(
      scrapeTimeMetric('request_total', 'HTTP requests received', 'counter', () => {
        const out: Sample[] = [];
        for (const g of groups.values()) {
          let n = 0;
          for (const r of g.byDst.values()) n += r.count;
          if (n > 0) out.push({ value: n, labels: g.labels });
        }
        return out;
      }),
    );
    reg(
      scrapeTimeMetric('response_total', 'HTTP responses sent', 'counter', () =>
        merged().map((c) => ({ value: c.count, labels: c.labels })),
      ),
    );
    reg(
      scrapeTimeMetric(
        'response_latency_ms',
        'time from a request head arriving to its response head leaving (ms)',
        'histogram',
        () => {
          const out: Sample[] = [];
          for (const c of merged()) pushHistogram(out, 'response_latency_ms', c.labels, c.buckets, c.count, c.sum);
          return out;
        },
      ),
    );
    // The route_* family: per route rule ("default" without one) and destination workload.
    reg(
      scrapeTimeMetric(
        'route_request_total',
        'HTTP requests received, by route and destination workload',
        'counter',
        () => [...allStats()].filter((r) => r.count > 0).map((r) => ({ value: r.count, labels: r.labels })),
      ),
    );
    reg(
      scrapeTimeMetric(
        'route_response_total',
        'HTTP responses sent, by route and destination workload',
        'counter',
        () => [...allStats()].flatMap((r) => [...r.cells.values()].map((c) => ({ value: c.count, labels: c.labels }))),
      ),
    );
    reg(
      scrapeTimeMetric(
        'route_response_latency_ms',
        'time from a request head arriving to its response head leaving (ms), by route and destination workload',
        'histogram',
        () => {
          const out: Sample[] = [];
          for (const r of allStats())
            for (const c of r.cells.values())
              pushHistogram(out, 'route_response_latency_ms', c.labels, c.buckets, c.count, c.sum);
          return out;
        },
      ),
    );
    this.tcpOpenTotal = new Counter({
      name: 'tcp_open_total',
      help: 'connections accepted',
      labelNames: tcpLabels,
      registers,
    });
    this.tcpCloseTotal = new Counter({
      name: 'tcp_close_total',
      help: 'connections closed',
      labelNames: [...tcpLabels, 'errno'],
      registers,
    });
    this.tcpOpenConnections = new Gauge({
      name: 'tcp_open_connections',
      help: 'connections open now',
      labelNames: tcpLabels,
      registers,
    });
    const bytes = (
      name: string,
      help: string,
      field: 'bytesRead' | 'bytesWritten',
      closed: 'closedRead' | 'closedWritten',
    ) => {
      const tcp = this.tcp;
      return new Counter({
        name,
        help,
        labelNames: tcpLabels,
        registers,
        collect() {
          this.reset();
          for (const s of tcp.values()) {
            let total = s[closed];
            for (const sock of s.open) total += sock[field];
            if (total > 0) this.inc(s.labels, total);
          }
        },
      });
    };
    bytes('tcp_read_bytes_total', 'bytes read from clients', 'bytesRead', 'closedRead');
    bytes('tcp_write_bytes_total', 'bytes written to clients', 'bytesWritten', 'closedWritten');
    this.detectTimeoutTotal = new Counter({
      name: 'protocol_detect_timeout_total',
      help: 'connections that sent nothing before the detection timeout and were treated as opaque TCP',
      labelNames: ['direction'],
      registers,
    });
    this.refusedTotal = new Counter({
      name: 'tcp_refused_total',
      help: 'connections refused before proxying: reason="loop" (meant for the proxy itself) or "no_destination" (not redirected)',
      labelNames: ['direction', 'reason'],
      registers,
    });
    this.registry.registerMetric(
      scrapeTimeMetric(
        'request_errors_total',
        'HTTP requests the proxy ended with an error of its own; error: connect_refused, connect_timeout, response_timeout, route_timeout, no_endpoints, endpoints_ejected, queue_full, upstream_tls, ... (the codes of src/proxy/errors/errors.ts)',
        'counter',
        () => this.requestErrors.samples(),
      ) as unknown as Counter,
    );
    this.requestQueueTotal = new Counter({
      name: 'request_queue_total',
      help: 'HTTP requests that waited for a slot of their destination\'s in-flight limit (result="queued") or were refused with 503 because its queue was full (result="full")',
      labelNames: ['direction', 'target_addr', 'result'],
      registers,
    });
    const routeLabels = ['direction', 'target_addr', 'route', 'reason'] as const;
    this.retryTotal = new Counter({
      name: 'retry_total',
      help: 'requests retried by a route retry policy; reason: how the attempt ended (status, connect-failure, reset, timeout)',
      labelNames: routeLabels,
      registers,
    });
    this.retrySkippedTotal = new Counter({
      name: 'retry_skipped_total',
      help: 'attempts a route retry policy covers that were not retried; reason: budget-exhausted, attempts-exhausted, client-gone, deadline, not-replayable, not-idempotent',
      labelNames: routeLabels,
      registers,
    });
    this.endpointEjectionsTotal = new Counter({
      name: 'endpoint_ejections_total',
      help: 'endpoints ejected by their circuit breaker (consecutive failures), of a route backend or of the destination itself',
      labelNames: ['direction', 'target_addr', 'backend'],
      registers,
    });
    this.mirrorTotal = new Counter({
      name: 'mirror_total',
      help: 'requests mirrored by a RequestMirror filter: result="sent", "failed" or "dropped" (over the bound on mirrors in flight)',
      labelNames: ['direction', 'target_addr', 'result'],
      registers,
    });
    this.tlsHandshakeErrors = this.tls
      ? new Counter({
          name: 'tls_handshake_errors_total',
          help: 'mesh TLS handshakes that failed: reason="handshake" (chain, expiry, ALPN, broken off), "peer_identity" (not the expected identity), "no_identity" (no certificate yet)',
          labelNames: ['direction', 'reason'],
          registers,
        })
      : undefined;
    this.tlsHandshakes = this.tls
      ? new Counter({
          name: 'tls_handshakes_total',
          help: 'mesh TLS handshakes that completed: resumed="true" (a session ticket, no certificates exchanged) or "false" (a full handshake); group: the key exchange agreed (X25519MLKEM768, X25519, ...), known on the client side only (outbound; inbound says "unknown")',
          labelNames: ['direction', 'resumed', 'group'],
          registers,
        })
      : undefined;
    this.h2 = new H2Metrics(this.registry);
    registerProcessMetrics(this.registry);
  }

  /** Inbound authorization and rate limiting, registered when the proxy has a policy service. Like
   *  RouteStats, plain numbers rendered at scrape time: a decision takes its cell once (per connection
   *  and policy version, src/proxy/inbound/authz), and a request only adds one to it. */
  enablePolicy(stats: { readonly updates: number; readonly reconnects: number }): PolicyMetrics {
    const m: PolicyMetrics = {
      httpAllow: new CounterCells(),
      httpDeny: new CounterCells(),
      tcpAllow: new CounterCells(),
      tcpDeny: new CounterCells(),
      rateLimited: new CounterCells(),
    };
    const reg = (name: string, help: string, cells: CounterCells) =>
      this.registry.registerMetric(
        scrapeTimeMetric(name, help, 'counter', () => cells.samples()) as unknown as Counter,
      );
    reg(
      'inbound_http_authz_allow_total',
      'inbound HTTP requests authorized; srv: the Server (or default:<policy>), route: the inbound route, rule: the authorization that allowed it',
      m.httpAllow,
    );
    reg(
      'inbound_http_authz_deny_total',
      'inbound HTTP requests denied (403, gRPC PERMISSION_DENIED); rule="no-route": no inbound route matched (404)',
      m.httpDeny,
    );
    reg('inbound_tcp_authz_allow_total', 'inbound opaque TCP connections authorized', m.tcpAllow);
    reg('inbound_tcp_authz_deny_total', 'inbound opaque TCP connections denied (closed at once)', m.tcpDeny);
    reg(
      'inbound_http_ratelimit_limited_total',
      'inbound HTTP requests refused by a local rate limit (429); limit: total, identity or override',
      m.rateLimited,
    );
    const registers = [this.registry];
    const counter = (name: string, help: string, read: () => number) => scrapeCounter(registers, name, help, read);
    counter('policy_updates_total', 'inbound policies received from the policy service', () => stats.updates);
    counter('policy_reconnects_total', 'policy watches started again after their stream ended', () => stats.reconnects);
    this.policy = m;
    return m;
  }

  /** Counts a request the proxy ended with `err` (request_errors_total). */
  requestError(direction: Direction, targetAddr: string, err: unknown): void {
    const error = err instanceof ProxyError ? errorLabel(err) : 'internal';
    this.requestErrors.labels({ direction, target_addr: targetAddr, error }).inc();
  }

  /** Set by enablePolicy. */
  policy: PolicyMetrics | undefined;

  /** The proxy's certificate figures (kept by src/proxy/identity), read at scrape time. */
  watchIdentity(source: {
    readonly metrics: {
      readonly certExpirationSeconds: number;
      readonly refreshCount: number;
      readonly refreshFailures: number;
      readonly trust?: { readonly generation: number; readonly views: readonly TrustAnchorView[] } | undefined;
      readonly issuer?: { readonly subject: string; readonly fingerprint: string } | undefined;
    };
    /** Bad reads of the trust bundle file (the last good bundle kept). */
    readonly trustReadFailures?: () => number;
  }): void {
    const registers = [this.registry];
    // What the proxy trusts and holds, so that a rotation can check every proxy from its metrics.
    new Gauge({
      name: 'identity_trust_anchors',
      help: 'the anchors of the trust bundle peers and the control plane are checked against (1 per anchor; info)',
      labelNames: ['fingerprint', 'subject', 'not_after'] as const,
      registers,
      collect() {
        this.reset();
        for (const v of source.metrics.trust?.views ?? [])
          this.set({ fingerprint: v.fingerprint, subject: v.subject, not_after: v.notAfter }, 1);
      },
    });
    new Gauge({
      name: 'identity_trust_bundle_generation',
      help: "the trust bundle's generation (raised by the runtime to make proxies renew; 0 without one)",
      registers,
      collect() {
        this.set(source.metrics.trust?.generation ?? 0);
      },
    });
    new Gauge({
      name: 'identity_cert_issuer',
      help: 'the issuer of the certificate the proxy holds (1; info; none before the first)',
      labelNames: ['fingerprint', 'subject'] as const,
      registers,
      collect() {
        this.reset();
        const i = source.metrics.issuer;
        if (i !== undefined) this.set({ fingerprint: i.fingerprint, subject: i.subject }, 1);
      },
    });
    if (source.trustReadFailures !== undefined)
      scrapeCounter(
        registers,
        'identity_trust_bundle_read_failures_total',
        'reads of the trust bundle file that failed or held a bad bundle (the last good one kept)',
        source.trustReadFailures,
      );
    new Gauge({
      name: 'identity_cert_expiration_timestamp_seconds',
      help: 'when the certificate the proxy holds expires (unix seconds; 0 before the first)',
      registers,
      collect() {
        this.set(source.metrics.certExpirationSeconds);
      },
    });
    const counter = (name: string, help: string, read: () => number) => scrapeCounter(registers, name, help, read);
    counter(
      'identity_cert_refresh_count',
      'certificates obtained from the identity service, the first one included',
      () => source.metrics.refreshCount,
    );
    counter(
      'identity_cert_refresh_failures_total',
      'certificate requests that failed (identity service unreachable, token refused)',
      () => source.metrics.refreshFailures,
    );
  }

  /** Tap, tracing and access log counters (plain numbers kept by src/proxy/observe), read at scrape time;
   *  each only when it is configured. */
  watchObservers(o: {
    readonly tap:
      { readonly stats: { readonly sessions: number; readonly events: number; readonly dropped: number } } | undefined;
    readonly observer: {
      readonly tracer:
        | { readonly stats: { readonly exported: number; readonly dropped: number; readonly exportFailures: number } }
        | undefined;
      readonly accessLog: { readonly stats: { readonly lines: number; readonly dropped: number } } | undefined;
    };
  }): void {
    const registers = [this.registry];
    const counter = (name: string, help: string, read: () => number) => scrapeCounter(registers, name, help, read);
    const tap = o.tap;
    if (tap !== undefined) {
      new Gauge({
        name: 'tap_sessions',
        help: 'tap sessions open now',
        registers,
        collect() {
          this.set(tap.stats.sessions);
        },
      });
      counter('tap_events_total', 'events sent to tap sessions', () => tap.stats.events);
      counter(
        'tap_events_dropped_total',
        'events a tap session missed because its client read too slowly',
        () => tap.stats.dropped,
      );
    }
    const tracer = o.observer.tracer;
    if (tracer !== undefined) {
      counter('trace_spans_exported_total', 'spans the OTLP collector accepted', () => tracer.stats.exported);
      counter(
        'trace_spans_dropped_total',
        'spans dropped: the export queue was full or the export failed',
        () => tracer.stats.dropped,
      );
      counter('trace_export_failures_total', 'OTLP export requests that failed', () => tracer.stats.exportFailures);
    }
    const accessLog = o.observer.accessLog;
    if (accessLog !== undefined) {
      counter('access_log_lines_total', 'access log lines written', () => accessLog.stats.lines);
      counter(
        'access_log_dropped_total',
        'access log lines dropped because the log could not keep up',
        () => accessLog.stats.dropped,
      );
    }
  }

  /** Discovery's counters (plain numbers kept by src/proxy/discover), read at scrape time. */
  watchDiscovery(stats: {
    readonly updates: number;
    readonly reconnects: number;
    readonly lookupTimeouts: number;
    readonly watches: number;
  }): void {
    const registers = [this.registry];
    const counter = (name: string, help: string, read: () => number) => scrapeCounter(registers, name, help, read);
    counter('destination_updates_total', 'answers received from the destination service', () => stats.updates);
    counter(
      'destination_reconnects_total',
      'destination watches started again after their stream ended (control plane restarts, network)',
      () => stats.reconnects,
    );
    counter(
      'destination_lookup_timeouts_total',
      'first lookups not answered in time, sent to the original address meanwhile',
      () => stats.lookupTimeouts,
    );
    new Gauge({
      name: 'destination_watches',
      help: 'destinations watched now',
      registers,
      collect() {
        this.set(stats.watches);
      },
    });
  }

  /** `peer`: the identity mesh TLS proved for the other proxy (client inbound, server outbound);
   *  undefined for plaintext. Always undefined with mTLS off. `route`: the `namespace/name` of the
   *  HTTPRoute or GRPCRoute that sent the request (a `route` label, only on requests routed).
   *  `dst`: the endpoint's workload (outbound); inbound it is always the proxy's own pod. */
  route(
    direction: Direction,
    target: string,
    authority: string,
    peer?: string,
    route?: string,
    dst?: DstMeta,
  ): RouteStats {
    let key =
      peer === undefined ? `${direction}\0${target}\0${authority}` : `${direction}\0${target}\0${authority}\0${peer}`;
    if (route !== undefined) key += `\0\0${route}`;
    let g = this.groups.get(key);
    if (g === undefined) {
      // Past the cap, new label sets share one "overflow" set per direction (created beyond the cap).
      if (this.statsCount >= MAX_ROUTES && authority !== 'overflow')
        return this.route(direction, 'overflow', 'overflow', undefined, undefined, OVERFLOW_DST);
      const base = this.baseLabels(direction, target, authority, peer);
      g = new RouteGroup(route !== undefined ? { ...base, route } : base, route ?? 'default');
      this.groups.set(key, g);
    }
    const d = dst === OVERFLOW_DST ? dst : direction === 'inbound' ? this.self : (dst ?? NO_DST);
    let r = g.byDst.get(d.key);
    if (r === undefined) {
      if (this.statsCount >= MAX_ROUTES && d !== OVERFLOW_DST)
        return this.route(direction, target, authority, peer, route, OVERFLOW_DST);
      r = new RouteStats(
        { ...this.baseLabels(direction, target, authority, peer), route: g.route, ...dstLabels(d) },
        d,
        g.route,
      );
      g.byDst.set(d.key, r);
      this.statsCount++;
    }
    return r;
  }

  /** The labels every request series has: direction, target and authority, and with mTLS the peer's. */
  private baseLabels(
    direction: Direction,
    target: string,
    authority: string,
    peer: string | undefined,
  ): Record<string, string> {
    return this.tls
      ? { direction, target_addr: target, authority, ...tlsLabels(direction, peer) }
      : { direction, target_addr: target, authority };
  }

  /** `peer` as for route(). */
  tcpFor(direction: Direction, target: string, peer?: string): TcpStats {
    const key = peer === undefined ? `${direction}\0${target}` : `${direction}\0${target}\0${peer}`;
    let t = this.tcp.get(key);
    if (!t) {
      if (this.tcp.size >= MAX_ROUTES && target !== 'overflow') return this.tcpFor(direction, 'overflow');
      const labels = this.tls
        ? { direction, target_addr: target, ...tlsLabels(direction, peer) }
        : { direction, target_addr: target };
      t = new TcpStats(labels, this.tcpOpenTotal.labels(labels), this.tcpOpenConnections.labels(labels), this);
      this.tcp.set(key, t);
    }
    return t;
  }
}

/** A counter whose value is read from plain numbers kept elsewhere, at scrape time. */
function scrapeCounter(registers: Registry[], name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
