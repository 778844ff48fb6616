// The HTTP/2 connection figures of the proxy's own engine (H2Connection.stats, ./http2/wire) as Prometheus
// metrics: a connection's counters are added to its label set's totals when its socket closes, and the
// open connections' are read when Prometheus scrapes. Nothing here runs per frame or per request.
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { H2Codes, h2ErrorCodeName, type H2Code } from './http2/wire/errors.js';

type Direction = 'inbound' | 'outbound';

/** Who is at the other end: a client of the listener (the proxy is the server), or an upstream server. */
export type H2Peer = 'client' | 'server';

/** What is read from a connection (H2Connection's stats and socket; a structural type, so that the
 *  metrics do not depend on the engine). */
export interface H2ConnectionFigures {
  readonly socket: Duplex;
  readonly stats: {
    readonly streamsOpened: number;
    readonly streamsRefused: number;
    readonly resetsSent: readonly number[];
    readonly resetsReceived: readonly number[];
    readonly goAwaySent: number;
    readonly goAwayReceived: number;
    readonly errors: Readonly<Partial<Record<H2Code, number>>>;
    readonly hostile: Readonly<Partial<Record<string, number>>>;
    readonly writes: number;
    readonly framesOut: number;
    readonly framesIn: number;
  };
}

/**
 * The `kind` of h2_protocol_errors_total for the codes that say the peer broke HTTP/2 or attacked it.
 * FLOOD and SEND_STALLED are split by what the peer did (stats.hostile: rapid_reset, ping_flood,
 * settings_flood, empty_frame_flood, reset_flood, zero_window, slow_read). Not here: REFUSED_STREAM
 * (h2_streams_refused_total), PEER_ERROR (the peer's GOAWAY: h2_goaways_received_total), PING_TIMEOUT,
 * INTERNAL (the proxy's own fault).
 */
const KIND_OF_CODE: Readonly<Partial<Record<H2Code, string>>> = {
  [H2Codes.BAD_PREFACE]: 'bad_preface',
  [H2Codes.PROTOCOL]: 'protocol',
  [H2Codes.FRAME_SIZE]: 'frame_size',
  [H2Codes.SETTINGS_VALUE]: 'settings_value',
  [H2Codes.PUSH_REFUSED]: 'push_promise',
  [H2Codes.FLOW_CONTROL]: 'flow_control',
  [H2Codes.FIELD_BLOCK_TOO_LARGE]: 'continuation_flood',
  [H2Codes.HEADER_LIST_TOO_LARGE]: 'header_list_too_large',
  [H2Codes.STREAM_STATE]: 'stream_state',
  [H2Codes.MALFORMED]: 'malformed',
  [H2Codes.SETTINGS_TIMEOUT]: 'settings_timeout',
  [H2Codes.HPACK_TRUNCATED]: 'hpack',
  [H2Codes.HPACK_INTEGER_OVERFLOW]: 'hpack',
  [H2Codes.HPACK_BAD_INDEX]: 'hpack',
  [H2Codes.HPACK_HUFFMAN]: 'hpack',
  [H2Codes.HPACK_TABLE_SIZE_UPDATE]: 'hpack',
};

/** RFC 9113 error codes 0..13 and "unknown" (H2Stats keeps unknown codes at index 14). */
const CODES = 15;
const codeName = (i: number): string => (i < 14 ? h2ErrorCodeName(i) : 'UNKNOWN');

/** The figures of one (direction, peer): the closed connections' sums, and the open connections. */
class Totals {
  opened = 0;
  streams = 0;
  refused = 0;
  writes = 0;
  framesOut = 0;
  framesIn = 0;
  readonly resetsSent = new Float64Array(CODES);
  readonly resetsReceived = new Float64Array(CODES);
  readonly goAwaysSent = new Float64Array(CODES);
  readonly goAwaysReceived = new Float64Array(CODES);
  readonly errors = new Map<string, number>();
  readonly open = new Set<H2ConnectionFigures>();

  constructor(readonly labels: Readonly<Record<string, string>>) {}

  add(c: H2ConnectionFigures): void {
    const s = c.stats;
    this.streams += s.streamsOpened;
    this.refused += s.streamsRefused;
    this.writes += s.writes;
    this.framesOut += s.framesOut;
    this.framesIn += s.framesIn;
    for (let i = 0; i < CODES; i++) {
      (this.resetsSent[i] as number) += s.resetsSent[i] ?? 0;
      (this.resetsReceived[i] as number) += s.resetsReceived[i] ?? 0;
    }
    if (s.goAwaySent >= 0) (this.goAwaysSent[Math.min(s.goAwaySent, 14)] as number)++;
    if (s.goAwayReceived >= 0) (this.goAwaysReceived[Math.min(s.goAwayReceived, 14)] as number)++;
    addKinds(this.errors, s);
  }
}

/** Adds a connection's protocol errors to `into`, by kind. */
function addKinds(into: Map<string, number>, s: H2ConnectionFigures['stats']): void {
  for (const [k, n] of Object.entries(s.hostile)) if (n) into.set(k, (into.get(k) ?? 0) + n);
  for (const [code, n] of Object.entries(s.errors) as [H2Code, number][]) {
    const kind = KIND_OF_CODE[code];
    if (kind !== undefined && n > 0) into.set(kind, (into.get(kind) ?? 0) + n);
  }
}

export class H2Metrics {
  private readonly totals = new Map<string, Totals>();

  constructor(registry: Registry) {
    const registers = [registry];
    const all = (): Iterable<Totals> => this.totals.values();
    const labelNames = ['direction', 'peer'] as const;
    /** A counter of one figure per (direction, peer): closed connections' sum plus the open ones'. */
    const plain = (
      name: string,
      help: string,
      closed: (t: Totals) => number,
      open: (c: H2ConnectionFigures) => number,
    ): void => {
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const t of all()) {
            let n = closed(t);
            for (const c of t.open) n += open(c);
            if (n > 0) this.inc(t.labels, n);
          }
        },
      });
    };
    plain(
      'h2_connections_total',
      'HTTP/2 connections of the proxy\'s own engine: peer="client" accepted, peer="server" opened to upstreams',
      (t) => t.opened,
      () => 0,
    );
    new Gauge({
      name: 'h2_open_connections',
      help: "HTTP/2 connections of the proxy's own engine open now",
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const t of all()) this.set(t.labels, t.open.size);
      },
    });
    plain(
      'h2_streams_total',
      'HTTP/2 streams opened (by the client, or by the proxy toward the upstream)',
      (t) => t.streams,
      (c) => c.stats.streamsOpened,
    );
    plain(
      'h2_streams_refused_total',
      'new streams refused with REFUSED_STREAM: over SETTINGS_MAX_CONCURRENT_STREAMS, or after the GOAWAY',
      (t) => t.refused,
      (c) => c.stats.streamsRefused,
    );
    plain(
      'h2_frames_received_total',
      'HTTP/2 frames received',
      (t) => t.framesIn,
      (c) => c.stats.framesIn,
    );
    plain(
      'h2_frames_sent_total',
      'HTTP/2 frames sent',
      (t) => t.framesOut,
      (c) => c.stats.framesOut,
    );
    plain(
      'h2_socket_writes_total',
      'socket writes of HTTP/2 frames (frames sent / writes: the batching)',
      (t) => t.writes,
      (c) => c.stats.writes,
    );
    /** A counter per (direction, peer, code): RFC 9113 error codes by name. */
    const byCode = (
      name: string,
      help: string,
      closed: (t: Totals) => Float64Array,
      open: (c: H2ConnectionFigures, sums: Float64Array) => void,
    ): void => {
      new Counter({
        name,
        help,
        labelNames: [...labelNames, 'code'],
        registers,
        collect() {
          this.reset();
          for (const t of all()) {
            const sums = Float64Array.from(closed(t));
            for (const c of t.open) open(c, sums);
            for (let i = 0; i < CODES; i++) {
              const n = sums[i] as number;
              if (n > 0) this.inc({ ...t.labels, code: codeName(i) }, n);
            }
          }
        },
      });
    };
    const addArray = (from: readonly number[], sums: Float64Array): void => {
      for (let i = 0; i < CODES; i++) (sums[i] as number) += from[i] ?? 0;
    };
    const addOne = (code: number, sums: Float64Array): void => {
      if (code >= 0) (sums[Math.min(code, 14)] as number)++;
    };
    byCode(
      'h2_resets_sent_total',
      'RST_STREAM frames the proxy sent, by RFC 9113 error code',
      (t) => t.resetsSent,
      (c, s) => addArray(c.stats.resetsSent, s),
    );
    byCode(
      'h2_resets_received_total',
      'RST_STREAM frames the proxy received, by RFC 9113 error code',
      (t) => t.resetsReceived,
      (c, s) => addArray(c.stats.resetsReceived, s),
    );
    byCode(
      'h2_goaways_sent_total',
      'connections the proxy sent GOAWAY on, by its RFC 9113 error code (NO_ERROR: a drain)',
      (t) => t.goAwaysSent,
      (c, s) => addOne(c.stats.goAwaySent, s),
    );
    byCode(
      'h2_goaways_received_total',
      'connections the peer sent GOAWAY on, by its RFC 9113 error code',
      (t) => t.goAwaysReceived,
      (c, s) => addOne(c.stats.goAwayReceived, s),
    );
    new Counter({
      name: 'h2_protocol_errors_total',
      help:
        'HTTP/2 peers that broke the protocol or attacked it, by kind: rapid_reset, continuation_flood, ping_flood, ' +
        'settings_flood, empty_frame_flood, reset_flood, zero_window, slow_read, header_list_too_large, ' +
        'frame_size, protocol, flow_control, stream_state, malformed, hpack, settings_value, push_promise, ' +
        'bad_preface, settings_timeout (README, "Hostile HTTP/2 peers")',
      labelNames: [...labelNames, 'kind'],
      registers,
      collect() {
        this.reset();
        for (const t of all()) {
          const kinds = new Map(t.errors);
          for (const c of t.open) addKinds(kinds, c.stats);
          for (const [kind, n] of kinds) this.inc({ ...t.labels, kind }, n);
        }
      },
    });
  }

  /** Counts a new connection, and adds its figures to the totals when its socket closes. */
  track(conn: H2ConnectionFigures, direction: Direction, peer: H2Peer): void {
    const key = `${direction}\0${peer}`;
    let t = this.totals.get(key);
    if (t === undefined) this.totals.set(key, (t = new Totals({ direction, peer })));
    const totals = t;
    totals.opened++;
    totals.open.add(conn);
    // Registered after the connection's own 'close' listener: its figures are final by then.
    conn.socket.once('close', () => {
      if (totals.open.delete(conn)) totals.add(conn);
    });
  }
}
