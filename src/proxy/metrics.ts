// The proxy's Prometheus metrics, with the names existing mesh dashboards use. Hot-path updates go
// through cached label children (no label hashing per request); byte counters are read from the
// sockets when Prometheus scrapes, not counted per chunk.
import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Direction = 'inbound' | 'outbound';

/** Latency buckets in ms: sub-millisecond up to tens of seconds. */
const LATENCY_BUCKETS_MS = [0.25, 0.5, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 5000, 10000, 30000];
/** Label sets kept per metric family before new ones are folded into authority="overflow". */
const MAX_ROUTES = 4096;

const HTTP_LABELS = ['direction', 'target_addr', 'authority'] as const;
const RESPONSE_LABELS = [...HTTP_LABELS, 'status_code', 'grpc_status_code', 'classification'] as const;
const TCP_LABELS = ['direction', 'target_addr'] as const;

interface ResponseChildren {
  readonly total: { inc(): void };
  readonly latency: { observe(v: number): void };
}

/** Per (direction, target, authority): the children a request touches, resolved once. */
export class RouteStats {
  private readonly responses = new Map<string, ResponseChildren>();
  constructor(
    private readonly m: ProxyMetrics,
    readonly labels: { direction: Direction; target_addr: string; authority: string },
    readonly requests: { inc(): void },
  ) {}

  /** Records one finished exchange. grpcStatus is undefined for plain HTTP. */
  response(status: number, latencyMs: number, grpcStatus?: number): void {
    const key = grpcStatus === undefined ? String(status) : `${status}/${grpcStatus}`;
    let c = this.responses.get(key);
    if (!c) {
      const failure = status >= 500 || (grpcStatus !== undefined && grpcStatus !== 0) || status === 0;
      const labels = {
        ...this.labels,
        status_code: status === 0 ? '' : String(status),
        grpc_status_code: grpcStatus === undefined ? '' : String(grpcStatus),
        classification: failure ? 'failure' : 'success',
      };
      c = { total: this.m.responseTotal.labels(labels), latency: this.m.responseLatency.labels(labels) };
      this.responses.set(key, c);
    }
    c.total.inc();
    c.latency.observe(latencyMs);
  }
}

/** Per (direction, target): the connections of one listener toward one destination. */
export class TcpStats {
  readonly open = new Set<Socket>();
  closedRead = 0;
  closedWritten = 0;
  constructor(
    readonly labels: { direction: Direction; target_addr: string },
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

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requestTotal: Counter<(typeof HTTP_LABELS)[number]>;
  readonly responseTotal: Counter<(typeof RESPONSE_LABELS)[number]>;
  readonly responseLatency: Histogram<(typeof RESPONSE_LABELS)[number]>;
  readonly tcpOpenTotal: Counter<(typeof TCP_LABELS)[number]>;
  readonly tcpCloseTotal: Counter<(typeof TCP_LABELS)[number] | 'errno'>;
  readonly tcpOpenConnections: Gauge<(typeof TCP_LABELS)[number]>;
  readonly detectTimeoutTotal: Counter<'direction'>;
  readonly refusedTotal: Counter<'direction' | 'reason'>;
  private readonly routes = new Map<string, RouteStats>();
  private readonly tcp = new Map<string, TcpStats>();

  constructor() {
    const registers = [this.registry];
    this.requestTotal = new Counter({ name: 'request_total', help: 'HTTP requests received', labelNames: HTTP_LABELS, registers });
    this.responseTotal = new Counter({ name: 'response_total', help: 'HTTP responses sent', labelNames: RESPONSE_LABELS, registers });
    this.responseLatency = new Histogram({
      name: 'response_latency_ms',
      help: 'time from a request head arriving to its response head leaving (ms)',
      labelNames: RESPONSE_LABELS,
      buckets: LATENCY_BUCKETS_MS,
      registers,
    });
    this.tcpOpenTotal = new Counter({ name: 'tcp_open_total', help: 'connections accepted', labelNames: TCP_LABELS, registers });
    this.tcpCloseTotal = new Counter({ name: 'tcp_close_total', help: 'connections closed', labelNames: [...TCP_LABELS, 'errno'], registers });
    this.tcpOpenConnections = new Gauge({ name: 'tcp_open_connections', help: 'connections open now', labelNames: TCP_LABELS, registers });
    const bytes = (name: string, help: string, field: 'bytesRead' | 'bytesWritten', closed: 'closedRead' | 'closedWritten') => {
      const tcp = this.tcp;
      return new Counter({
        name,
        help,
        labelNames: TCP_LABELS,
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
    collectDefaultMetrics({ register: this.registry });
  }

  route(direction: Direction, target: string, authority: string): RouteStats {
    const key = `${direction}\0${target}\0${authority}`;
    let r = this.routes.get(key);
    if (r) return r;
    if (this.routes.size >= MAX_ROUTES) return this.route(direction, target, 'overflow');
    const labels = { direction, target_addr: target, authority };
    r = new RouteStats(this, labels, this.requestTotal.labels(labels));
    this.routes.set(key, r);
    return r;
  }

  tcpFor(direction: Direction, target: string): TcpStats {
    const key = `${direction}\0${target}`;
    let t = this.tcp.get(key);
    if (!t) {
      const labels = { direction, target_addr: target };
      t = new TcpStats(labels, this.tcpOpenTotal.labels(labels), this.tcpOpenConnections.labels(labels), this);
      this.tcp.set(key, t);
    }
    return t;
  }
}
