// Tracing: W3C Trace Context (https://www.w3.org/TR/trace-context/) propagation and one span per request
// on each side, exported in batches to an OTLP/HTTP collector with the JSON encoding
// (https://opentelemetry.io/docs/specs/otlp/#otlphttp). Off unless a collector is configured. The queue
// is bounded: when it is full a span is dropped and counted, never waited for; one export is in flight at
// a time, so a slow collector costs memory up to the bound and nothing else.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../../core/log.js';
import type { EventSink, RequestEvent, TraceContext } from './event.js';
import { pathOnly } from './event.js';
import { isFailure } from '../metrics.js';

export type { TraceContext };

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** A new span for a request that came with `traceparent` (undefined or invalid: a new trace, sampled
 *  with probability `sampleRatio`; a parent's sampled flag is kept as it is). */
export function childContext(traceparent: string | undefined, sampleRatio = 1): TraceContext {
  const m = traceparent !== undefined ? TRACEPARENT.exec(traceparent.trim().toLowerCase()) : null;
  // Version ff is invalid; an all-zero trace or parent id is invalid (section 3.2.2.3 and 3.2.2.4).
  if (m !== null && m[1] !== 'ff' && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) {
    return {
      traceId: m[2] as string,
      spanId: randomBytes(8).toString('hex'),
      parentSpanId: m[3] as string,
      sampled: (parseInt(m[4] as string, 16) & 1) === 1,
    };
  }
  return {
    traceId: randomBytes(16).toString('hex'),
    spanId: randomBytes(8).toString('hex'),
    parentSpanId: '',
    sampled: sampleRatio >= 1 || Math.random() < sampleRatio,
  };
}

/** The traceparent the next hop gets: our span is its parent. */
export function formatTraceparent(c: TraceContext): string {
  return `00-${c.traceId}-${c.spanId}-${c.sampled ? '01' : '00'}`;
}

/** The value of header `name` (lower case) in a flat field list, the first one. */
export function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) {
    const n = fields[i] as string;
    if (n.length === name.length && n.toLowerCase() === name) return fields[i + 1];
  }
  return undefined;
}

/** `fields` with traceparent set to `value` (a copy; the original is left as it is). */
export function withTraceparent(fields: readonly string[], value: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const n = fields[i] as string;
    if (n.length === 11 && n.toLowerCase() === 'traceparent') continue;
    out.push(n, fields[i + 1] as string);
  }
  out.push('traceparent', value);
  return out;
}

export interface TracerOptions {
  /** The collector's base URL; spans are POSTed to `<url>/v1/traces` (unless the URL already ends so). */
  readonly collector: string;
  /** OTLP resource attributes: service.name, k8s.namespace.name, k8s.pod.name, ... */
  readonly resource: Readonly<Record<string, string>>;
  readonly log: Logger;
  /** Spans kept waiting for export at most (default 2048); beyond, dropped and counted. */
  readonly maxQueue?: number;
  /** Spans per export request at most (default 512). */
  readonly maxBatch?: number;
  /** How often a partial batch is sent (ms, default 1000). */
  readonly flushMs?: number;
  /** The share of the traces this proxy starts that are sampled (0 to 1, default 1). */
  readonly sampleRatio?: number;
}

export interface TracerStats {
  exported: number;
  dropped: number;
  exportFailures: number;
}

type Attr = { key: string; value: { stringValue: string } | { intValue: string } | { boolValue: boolean } };
const str = (key: string, v: string): Attr => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): Attr => ({ key, value: { intValue: String(Math.round(v)) } });

/** Nanoseconds since the epoch as OTLP JSON wants them (a decimal string: too large for a double). */
function nanos(ms: number): string {
  return (BigInt(Math.round(ms * 1000)) * 1000n).toString();
}

export class Tracer implements EventSink {
  readonly stats: TracerStats = { exported: 0, dropped: 0, exportFailures: 0 };
  private queue: unknown[] = [];
  private inFlight = false;
  private readonly timer: NodeJS.Timeout;
  private readonly url: URL;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly resource: Attr[];
  private failureLogged = false;
  private closed = false;

  constructor(private readonly o: TracerOptions) {
    const u = new URL(o.collector);
    if (!u.pathname.endsWith('/v1/traces')) u.pathname = `${u.pathname.replace(/\/$/, '')}/v1/traces`;
    this.url = u;
    this.maxQueue = o.maxQueue ?? 2048;
    this.maxBatch = o.maxBatch ?? 512;
    this.resource = Object.entries(o.resource)
      .filter(([, v]) => v !== '')
      .map(([k, v]) => str(k, v));
    this.timer = setInterval(() => this.flush(), o.flushMs ?? 1000);
    this.timer.unref();
  }

  /** This side's span of a request that came with `traceparent`. */
  child(traceparent: string | undefined): TraceContext {
    return childContext(traceparent, this.o.sampleRatio ?? 1);
  }

  emit(ev: RequestEvent): void {
    const t = ev.trace;
    if (t === undefined || !t.sampled || this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.stats.dropped++;
      return;
    }
    const failure = isFailure(ev.status, ev.grpcStatus, ev.failure !== undefined);
    const attrs: Attr[] = [
      str('outrigger.direction', ev.direction),
      str('http.request.method', ev.method),
      str('url.path', pathOnly(ev.path)),
      str('server.address', ev.authority),
      str('client.address', ev.src),
      str('network.peer.address', ev.dst),
      int('http.response.status_code', ev.status),
      str('outrigger.route', ev.route),
      str('outrigger.tls', String(ev.tls)),
    ];
    if (ev.grpcStatus !== undefined) attrs.push(int('rpc.grpc.status_code', ev.grpcStatus));
    if (ev.failure !== undefined) attrs.push(str('outrigger.failure', ev.failure));
    if (ev.clientId !== '') attrs.push(str('outrigger.client_id', ev.clientId));
    if (ev.serverId !== '') attrs.push(str('outrigger.server_id', ev.serverId));
    const d = ev.dstMeta;
    if (d.namespace !== '') attrs.push(str('outrigger.dst_namespace', d.namespace));
    if (d.workload !== '') attrs.push(str('outrigger.dst_deployment', d.workload));
    if (d.pod !== '') attrs.push(str('outrigger.dst_pod', d.pod));
    if (d.service !== '') attrs.push(str('outrigger.dst_service', d.service));
    this.queue.push({
      traceId: t.traceId,
      spanId: t.spanId,
      ...(t.parentSpanId !== '' ? { parentSpanId: t.parentSpanId } : {}),
      name: `${ev.direction} ${ev.method} ${pathOnly(ev.path)}`.slice(0, 200),
      // SPAN_KIND_SERVER (2) for what arrives at the pod, SPAN_KIND_CLIENT (3) for what leaves it.
      kind: ev.direction === 'inbound' ? 2 : 3,
      startTimeUnixNano: nanos(ev.startMs),
      endTimeUnixNano: nanos(ev.startMs + ev.latencyMs),
      attributes: attrs,
      // STATUS_CODE_ERROR (2) / UNSET (0).
      status: failure ? { code: 2 } : {},
    });
    if (this.queue.length >= this.maxBatch) this.flush();
  }

  /** Sends what is queued (one request at a time). */
  flush(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const spans = this.queue.splice(0, this.maxBatch);
    const body = JSON.stringify({
      resourceSpans: [
        { resource: { attributes: this.resource }, scopeSpans: [{ scope: { name: 'outrigger-proxy' }, spans }] },
      ],
    });
    this.inFlight = true;
    let settled = false;
    const done = (ok: boolean, why?: string) => {
      if (settled) return;
      settled = true;
      this.inFlight = false;
      if (ok) {
        this.stats.exported += spans.length;
        this.failureLogged = false;
      } else {
        this.stats.exportFailures++;
        this.stats.dropped += spans.length;
        // Degraded mode: logged once until an export succeeds again, counted always.
        if (!this.failureLogged)
          this.o.log.warn({ collector: this.url.origin, err: why }, 'trace export failed; spans dropped');
        this.failureLogged = true;
      }
      if (!this.closed && this.queue.length >= this.maxBatch) setImmediate(() => this.flush());
    };
    const mod = this.url.protocol === 'https:' ? https : http;
    const req = mod.request(
      this.url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          done((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300, `status ${res.statusCode}`),
        );
        res.on('error', (e) => done(false, e.message));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 10s')));
    req.on('error', (e) => done(false, e.message));
    req.end(body);
  }

  /** Stops the timer after a last flush (shutdown). */
  close(): void {
    this.flush();
    this.closed = true;
    clearInterval(this.timer);
  }
}
