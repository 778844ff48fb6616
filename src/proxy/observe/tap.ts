// The proxy's side of tap: GET /tap on the admin port streams one JSON line per finished request that
// matches the session's filter (application/x-ndjson). Authenticated with the mesh's tap token (a bearer
// token); at most MAX_SESSIONS at once (429 beyond); a session whose client reads too slowly loses events
// (counted) rather than making the proxy buffer them. Costs nothing while nobody taps: the servers build
// no event unless Observer.active.
import { timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { EventSink, RequestEvent } from './event.js';

/** Concurrent tap sessions per proxy. */
export const MAX_SESSIONS = 8;
/** Events per session when `max` is not given, and the most a session may ask for. */
export const DEFAULT_MAX_EVENTS = 100;
export const MAX_EVENTS = 10_000;
/** Bytes a session may have waiting in its socket before new events are dropped. */
const MAX_PENDING_BYTES = 256 * 1024;

/** What a tap session asks for (the query parameters of GET /tap). */
export interface TapFilter {
  /** A path prefix. */
  readonly path?: string;
  readonly method?: string;
  readonly authority?: string;
  readonly direction?: 'inbound' | 'outbound';
  /** A destination workload, service or pod name (exact). */
  readonly to?: string;
  readonly max: number;
  /** Include header values (otherwise only header names). */
  readonly headers: boolean;
}

/** One line of the stream: the tap contract (README "Tap"). */
export interface TapEvent {
  readonly ts: string;
  readonly direction: 'inbound' | 'outbound';
  readonly src: string;
  readonly dst: string;
  readonly tls: boolean;
  readonly client_id: string;
  readonly server_id: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly status: number;
  readonly grpc_status?: number;
  /** An answer that began but did not end whole: why (see RequestEvent.failure). */
  readonly failure?: string;
  readonly latency_ms: number;
  readonly route: string;
  readonly dst_workload?: string;
  /** Header names, or name → values with headers=1. */
  readonly headers?: readonly string[] | Readonly<Record<string, string[]>>;
}

/** Parses the query of GET /tap; a string is the problem (400). */
export function parseTapQuery(q: URLSearchParams): TapFilter | string {
  const direction = q.get('direction') ?? undefined;
  if (direction !== undefined && direction !== 'inbound' && direction !== 'outbound')
    return `direction must be inbound or outbound, got "${direction}"`;
  const maxText = q.get('max');
  let max = DEFAULT_MAX_EVENTS;
  if (maxText !== null) {
    if (!/^\d+$/.test(maxText) || Number(maxText) < 1) return `max must be a positive integer, got "${maxText}"`;
    max = Math.min(Number(maxText), MAX_EVENTS);
  }
  const opt = (k: string) => {
    const v = q.get(k);
    return v === null || v === '' ? {} : { [k]: v };
  };
  return {
    ...opt('path'),
    ...(q.get('method') ? { method: (q.get('method') as string).toUpperCase() } : {}),
    ...(q.get('authority') ? { authority: (q.get('authority') as string).toLowerCase() } : {}),
    ...(direction !== undefined ? { direction } : {}),
    ...opt('to'),
    max,
    headers: q.get('headers') === '1' || q.get('headers') === 'true',
  } as TapFilter;
}

export function matches(f: TapFilter, ev: RequestEvent): boolean {
  if (f.direction !== undefined && ev.direction !== f.direction) return false;
  if (f.method !== undefined && ev.method !== f.method) return false;
  if (f.path !== undefined && !ev.path.startsWith(f.path)) return false;
  if (f.authority !== undefined && ev.authority.toLowerCase() !== f.authority) return false;
  if (f.to !== undefined) {
    const d = ev.dstMeta;
    if (d.workload !== f.to && d.service !== f.to && d.pod !== f.to) return false;
  }
  return true;
}

/** The contract's JSON object for an event. */
export function tapEvent(ev: RequestEvent, withValues: boolean): TapEvent {
  const d = ev.dstMeta;
  const workload = d.workload !== '' ? d.workload : d.pod;
  let headers: TapEvent['headers'];
  if (withValues) {
    const h: Record<string, string[]> = {};
    for (let i = 0; i < ev.fields.length; i += 2)
      (h[(ev.fields[i] as string).toLowerCase()] ??= []).push(ev.fields[i + 1] as string);
    headers = h;
  } else {
    const names: string[] = [];
    for (let i = 0; i < ev.fields.length; i += 2) {
      const n = (ev.fields[i] as string).toLowerCase();
      if (!names.includes(n)) names.push(n);
    }
    headers = names;
  }
  return {
    ts: new Date(ev.startMs).toISOString(),
    direction: ev.direction,
    src: ev.src,
    dst: ev.dst,
    tls: ev.tls,
    client_id: ev.clientId,
    server_id: ev.serverId,
    method: ev.method,
    authority: ev.authority,
    path: ev.path,
    status: ev.status,
    ...(ev.grpcStatus !== undefined ? { grpc_status: ev.grpcStatus } : {}),
    ...(ev.failure !== undefined ? { failure: ev.failure } : {}),
    latency_ms: Math.round(ev.latencyMs * 1000) / 1000,
    route: ev.route,
    ...(workload !== '' ? { dst_workload: workload } : {}),
    headers,
  };
}

interface Session {
  readonly filter: TapFilter;
  readonly res: http.ServerResponse;
  sent: number;
}

export interface TapStats {
  sessions: number;
  events: number;
  dropped: number;
}

/** The live tap sessions of one proxy. */
export class TapHub implements EventSink {
  readonly stats: TapStats = { sessions: 0, events: 0, dropped: 0 };
  private readonly sessions = new Set<Session>();
  private readonly token: Buffer | undefined;

  constructor(
    token: string | undefined,
    /** Called when the number of sessions goes from 0 to 1 or back (Observer.active follows). */
    private readonly onChange: () => void,
  ) {
    this.token = token !== undefined && token !== '' ? Buffer.from(token) : undefined;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Serves GET /tap. */
  handle(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams): void {
    const text = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(body);
    };
    if (req.method !== 'GET') return text(405, 'method not allowed\n', { allow: 'GET' });
    if (this.token === undefined) return text(403, 'tap is off: this proxy has no tap token (--tap-token-file)\n');
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(auth);
    const given = m !== null ? Buffer.from((m[1] as string).trim()) : Buffer.alloc(0);
    if (given.length !== this.token.length || !timingSafeEqual(given, this.token)) {
      return text(401, 'tap needs the mesh tap token: Authorization: Bearer <token>\n', {
        'www-authenticate': 'Bearer',
      });
    }
    const filter = parseTapQuery(query);
    if (typeof filter === 'string') return text(400, `${filter}\n`);
    if (this.sessions.size >= MAX_SESSIONS)
      return text(429, `too many tap sessions on this proxy (at most ${MAX_SESSIONS})\n`, { 'retry-after': '1' });
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    // The head goes out at once, so that a client knows the session started before any event.
    res.flushHeaders();
    const s: Session = { filter, res, sent: 0 };
    this.sessions.add(s);
    this.stats.sessions = this.sessions.size;
    if (this.sessions.size === 1) this.onChange();
    const end = () => this.remove(s);
    res.once('close', end);
    req.socket.setTimeout(0);
  }

  private remove(s: Session): void {
    if (!this.sessions.delete(s)) return;
    this.stats.sessions = this.sessions.size;
    if (this.sessions.size === 0) this.onChange();
    if (!s.res.writableEnded) s.res.end();
  }

  emit(ev: RequestEvent): void {
    for (const s of this.sessions) {
      if (!matches(s.filter, ev)) continue;
      if (s.res.writableLength > MAX_PENDING_BYTES) {
        this.stats.dropped++;
        continue;
      }
      s.res.write(`${JSON.stringify(tapEvent(ev, s.filter.headers))}\n`);
      this.stats.events++;
      if (++s.sent >= s.filter.max) this.remove(s);
    }
  }

  close(): void {
    for (const s of [...this.sessions]) this.remove(s);
  }
}
