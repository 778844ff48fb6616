// The tap client: streams the requests one proxy sees (GET /tap on its admin port, one JSON object per
// line), for `outrigger tap` and the dashboard. The caller brings the mesh's tap token.
import http from 'node:http';
import type { TapEvent } from '../proxy/observe/tap.js';

export type { TapEvent };

/** What to tap: every field is optional (see the proxy's GET /tap). */
export interface TapQuery {
  /** A path prefix. */
  readonly path?: string;
  readonly method?: string;
  readonly authority?: string;
  readonly direction?: 'inbound' | 'outbound';
  /** A destination workload, Service or pod name. */
  readonly to?: string;
  /** Events before the proxy ends the stream (default 100, at most 10000). */
  readonly max?: number;
  /** Include header values (otherwise only header names). */
  readonly headers?: boolean;
}

export interface TapOptions {
  /** The proxy's admin address, `host:port`. */
  readonly addr: string;
  readonly token: string;
  readonly filter?: TapQuery;
  readonly signal?: AbortSignal;
  readonly onEvent: (ev: TapEvent) => void;
  /** Called once the proxy has accepted the session (its 200 arrived). */
  readonly onStart?: () => void;
}

/** Why a tap ended. */
export type TapEnd = 'done' | 'aborted';

export class TapError extends Error {
  constructor(
    message: string,
    /** The proxy's HTTP status (401 bad token, 429 too many sessions...), 0 when it did not answer. */
    readonly status: number,
  ) {
    super(message);
    this.name = 'TapError';
  }
}

export function tapPath(filter: TapQuery = {}): string {
  const q = new URLSearchParams();
  for (const k of ['path', 'method', 'authority', 'direction', 'to'] as const) {
    const v = filter[k];
    if (v !== undefined && v !== '') q.set(k, v);
  }
  if (filter.max !== undefined) q.set('max', String(filter.max));
  if (filter.headers === true) q.set('headers', '1');
  const s = q.toString();
  return s === '' ? '/tap' : `/tap?${s}`;
}

/** Taps one proxy until it has sent `max` events, the stream breaks, or `signal` aborts. Rejects with a
 *  TapError when the proxy refuses (wrong token, too many sessions, bad filter) or cannot be reached. */
export function tapPod(o: TapOptions): Promise<TapEnd> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted === true) return resolve('aborted');
    const req = http.request(`http://${o.addr}${tapPath(o.filter)}`, {
      headers: { authorization: `Bearer ${o.token}` },
      agent: false,
    });
    let settled = false;
    const finish = (err: Error | undefined, end: TapEnd = 'done') => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      if (err !== undefined) reject(err);
      else resolve(end);
    };
    const onAbort = () => {
      req.destroy();
      finish(undefined, 'aborted');
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (err) => finish(new TapError(`tap ${o.addr}: ${err.message}`, 0)));
    req.on('response', (res) => {
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          finish(new TapError(`tap ${o.addr}: ${res.statusCode} ${body.trim()}`, res.statusCode ?? 0)),
        );
        return;
      }
      req.setTimeout(0);
      o.onStart?.();
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) !== -1) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() === '') continue;
          try {
            o.onEvent(JSON.parse(line) as TapEvent);
          } catch {
            // A line that is not JSON is not ours to stop on.
          }
        }
      });
      res.on('end', () => finish(undefined));
      res.on('close', () => finish(undefined));
      res.on('error', (err) => finish(new TapError(`tap ${o.addr}: ${err.message}`, 0)));
    });
    req.end();
  });
}
