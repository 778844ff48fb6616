// One HTTP/2 connection (RFC 9113) over a duplex socket, in the server or the client role: preface and
// SETTINGS, stream states and limits, flow control both ways, batched writes, errors as RST_STREAM or
// GOAWAY, and the bounds that keep a hostile peer cheap. Events go to one handler object, by method call.
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { connectionError, H2Codes, H2Error, H2ErrorCode, streamError, type H2Code } from './errors.js';
import { ConnectionFlow } from './flow.js';
import {
  checkPriority,
  continuationFragment,
  dataFrameHeader,
  dataPayload,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  FieldBlockAssembler,
  Flag,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  goAwayFrame,
  headersFragment,
  headersFrames,
  parseGoAway,
  parseSettings,
  pingData,
  pingFrame,
  PREFACE,
  refusePushPromise,
  rstStreamCode,
  rstStreamFrame,
  SettingId,
  Settings,
  settingsAckFrame,
  settingsFrame,
  windowIncrement,
  windowUpdateFrame,
} from './frames.js';
import { DEFAULT_TABLE_SIZE, HeaderList, HpackDecoder, HpackEncoder } from './hpack.js';
import { checkedContentLength, checkFields, Section } from './fields.js';
import { H2Stream } from './stream.js';

export { H2Stream, StreamState } from './stream.js';

/**
 * What the connection tells its user, by method call (one handler object per connection). Buffers and
 * field lists handed over are the handler's to keep: the connection never reuses them.
 */
export interface H2Handler {
  /** A stream's final HEADERS (server role: a new request; client role: the response head). */
  onHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void;
  /** A 1xx response head (client role; RFC 9113 section 8.1): any number may precede the final one. */
  onInformational?(stream: H2Stream, fields: HeaderList): void;
  /** DATA: `len` bytes at `buf[off]` (a view of the socket's chunk, never reused). Return them with
   *  consumed(stream, n) once passed on, even after the stream ended: until then they hold the peer's
   *  connection window (a reset stream's bytes are returned by the connection). */
  onData(stream: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void;
  /** Trailers: a second HEADERS, which ends the stream. */
  onTrailers(stream: H2Stream, fields: HeaderList): void;
  /** The stream ended abnormally: the peer reset it (`local` false), or we did because of a stream
   *  error, the peer's GOAWAY, or the connection closing (`local` true). Not called for reset(). */
  onReset(stream: H2Stream, code: number, local: boolean): void;
  /** write() returned false on this stream, and its queue has room again. */
  onWritable(stream: H2Stream): void;
  /** The peer sent GOAWAY: no new streams; ours above `lastStreamId` were reset with REFUSED_STREAM. */
  onGoAway?(lastStreamId: number, code: number): void;
  /** Client role: a stream slot freed after request() had returned null (the connection was full). */
  onCapacity?(): void;
  /** The peer's first SETTINGS were applied (client role: the connection's limits are known). */
  onReady?(): void;
  /** A PING of ours was answered, after `rttMs`. */
  onPing?(rttMs: number): void;
  /** The socket closed; `err` says why when it was not a clean end. Called once, last. */
  onClose(err?: Error): void;
}

export interface H2ConnectionOptions {
  role: 'server' | 'client';
  /** Our SETTINGS_MAX_CONCURRENT_STREAMS: streams the peer may open at once (default 256). */
  maxConcurrentStreams?: number;
  /** Our SETTINGS_INITIAL_WINDOW_SIZE, bytes: each stream's receive window (default 65535). */
  streamWindow?: number;
  /** The connection's receive window, bytes, opened with WINDOW_UPDATE at the start (default 16 MiB). */
  connectionWindow?: number;
  /** Our SETTINGS_MAX_FRAME_SIZE, bytes (default 16384). */
  maxFrameSize?: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE, bytes; larger heads are refused per stream (default 65536). */
  maxHeaderListSize?: number;
  /** Our SETTINGS_HEADER_TABLE_SIZE for the peer's encoder, and our encoder's own cap (default 4096). */
  headerTableSize?: number;
  /** Bytes of DATA queued per stream beyond the peer's window before write() says stop (default 64 KiB). */
  maxQueuedPerStream?: number;
  /** Field block (HEADERS + CONTINUATION) bytes accepted before decoding (default 2 * maxHeaderListSize). */
  maxFieldBlock?: number;
  /** Our SETTINGS must be acknowledged within this, ms (default 10000; RFC 9113 section 6.5.3). */
  settingsTimeoutMs?: number;
  /** Send a PING after this long without input, ms (default 0: no keep-alive). */
  keepAliveMs?: number;
  /** A PING unanswered for this long ends the connection, ms (default 20000). */
  pingTimeoutMs?: number;
  /** With no open stream for this long, drain with GOAWAY, ms (default 0: never). */
  idleTimeoutMs?: number;
  /** Peer RST_STREAM frames accepted per second before GOAWAY ENHANCE_YOUR_CALM (default 1000). */
  maxResetsPerSecond?: number;
  /** Streams we reset because of the peer's errors, per second, before the same (default 1000). */
  maxStreamErrorsPerSecond?: number;
  /** PING and SETTINGS frames from the peer per second (each kind) before the same (default 100). */
  maxControlPerSecond?: number;
  /** Empty DATA frames without END_STREAM in a row before the same (default 32). */
  maxEmptyFrames?: number;
  /** Bytes waiting in the socket above which we stop sending DATA and, at 4x, stop reading (256 KiB). */
  socketHighWater?: number;
  /** DATA waiting this long, ms, without a byte sent because the peer keeps its window shut resets the
   *  stream (CANCEL); a socket that takes nothing for this long ends the connection (default 0: never;
   *  checked once a second). */
  stallTimeoutMs?: number;
}

/** Why we ended a stream or the connection of a hostile or broken peer, finer than the error code where
 *  one code covers several attacks (OUTR_ERR_H2_FLOOD, OUTR_ERR_H2_SEND_STALLED). */
export const HOSTILE_KINDS = [
  /** RST_STREAM frames past the bound per second (CVE-2023-44487). */
  'rapid_reset',
  /** PING frames past the bound per second (CVE-2019-9512). */
  'ping_flood',
  /** SETTINGS frames past the bound per second (CVE-2019-9515). */
  'settings_flood',
  /** Empty DATA frames without END_STREAM in a row (CVE-2019-9518). */
  'empty_frame_flood',
  /** Frames that each make us reset or refuse a stream, past the bound per second (CVE-2019-9514). */
  'reset_flood',
  /** A stream's DATA waited for window for the stall timeout (CVE-2019-9511, 9517). */
  'zero_window',
  /** The socket took nothing for the stall timeout while we had frames for it (CVE-2019-9517). */
  'slow_read',
] as const;
export type HostileKind = (typeof HOSTILE_KINDS)[number];

/** Counters kept per connection, for the proxy to export: error codes by RFC 9113 code and ours. */
export class H2Stats {
  streamsOpened = 0;
  streamsRefused = 0;
  /** RST_STREAM sent and received, indexed by RFC 9113 error code (unknown codes at index 14). */
  readonly resetsSent: number[] = new Array<number>(15).fill(0);
  readonly resetsReceived: number[] = new Array<number>(15).fill(0);
  /** The code of the GOAWAY we sent and received, -1 for none. */
  goAwaySent = -1;
  goAwayReceived = -1;
  /** Errors by stable code (OUTR_ERR_H2_*, OUTR_ERR_HPACK_*): stream and connection errors alike. */
  readonly errors: Partial<Record<H2Code, number>> = {};
  /** The errors counted as OUTR_ERR_H2_FLOOD and OUTR_ERR_H2_SEND_STALLED, by what the peer did. */
  readonly hostile: Partial<Record<HostileKind, number>> = {};
  /** The last PING round trip, ms. */
  rttMs = NaN;
  /** Socket writes made, and frames sent: their ratio is the batching. */
  writes = 0;
  framesOut = 0;
  framesIn = 0;
}

const MAX_STREAM_ID = 0x7fffffff;
/** Streams we reset lately, whose frames in flight we ignore (RFC 9113 section 5.1, "closed"). */
const RECENT_RESETS = 64;
const TICK_MS = 1000;
const CLOSE_GRACE_MS = 1000;
const NO_BLOCK = -1;
const EMPTY = Buffer.alloc(0);

function codeIndex(code: number): number {
  return code >= 0 && code < 14 ? code : 14;
}

export class H2Connection {
  readonly role: 'server' | 'client';
  readonly stats = new H2Stats();
  /** The peer's settings, as last received. */
  readonly peerSettings = new Settings();
  readonly socket: Duplex;

  private readonly handler: H2Handler;
  private readonly reader: FrameReader;
  private readonly flow: ConnectionFlow;
  private readonly decoder: HpackDecoder;
  private readonly encoder: HpackEncoder;
  private readonly assembler: FieldBlockAssembler;
  private readonly streams = new Map<number, H2Stream>();

  // Our settings, and what applies once the peer acknowledges them.
  private readonly maxConcurrent: number;
  private readonly localStreamWindow: number;
  private readonly localMaxFrame: number;
  private readonly tableSize: number;
  private readonly maxQueued: number;
  private settingsPending = 0;
  private settingsSentAt = 0;
  private readonly settingsTimeoutMs: number;

  /** Highest stream id the peer opened (what our GOAWAY reports), and the next id we open. */
  private lastPeerId = 0;
  private nextLocalId: number;
  private activeLocal = 0;
  private activePeer = 0;
  private wantCapacity = false;
  private peerSettingsSeen = false;

  // The field block being assembled: its stream and END_STREAM flag.
  private blockStream = NO_BLOCK;
  private blockEndStream = false;

  private readonly recentResets = new Int32Array(RECENT_RESETS);
  private recentPos = 0;

  // Output: frames of this turn, written on the next tick in one batch.
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private congested = false;
  /** DATA stopped at the high water mark of one batch (see saturated()). */
  private cutShort = false;
  private readPaused = false;
  private readonly highWater: number;
  /** Streams with DATA queued, waiting for window or for the socket. */
  private blockedStreams: H2Stream[] = [];
  private pumping = false;

  // Draining and closing.
  private goAwaySent = false;
  private goAwayLastId = MAX_STREAM_ID;
  private goAwayReceived = false;
  private closing = false;
  private closed = false;
  private closeError: Error | undefined;

  // Bounds on cheap frames per tick (one second), and in a row.
  private readonly maxResets: number;
  private readonly maxStreamErrors: number;
  private readonly maxControl: number;
  private readonly maxEmpty: number;
  private resetsThisTick = 0;
  private streamErrorsThisTick = 0;
  private pingsThisTick = 0;
  private settingsThisTick = 0;
  private emptyInARow = 0;

  // Stalls: ticks so far, the stall timeout in ticks, and the tick the socket last stopped taking bytes.
  private ticks = 0;
  private readonly stallTicks: number;
  private congestedTick = 0;

  // Keep-alive and idle.
  private readonly keepAliveMs: number;
  private readonly pingTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private sawInput = false;
  private quietSince = 0;
  private idleSince = 0;
  private pingOutstanding = false;
  private pingSentAt = 0;
  private readonly pingPayload = Buffer.alloc(8);
  private pingCounter = 0;
  private readonly timer: NodeJS.Timeout;

  // Socket listeners, bound once per connection.
  private readonly onSocketData = (chunk: Buffer): void => this.read(chunk);
  private readonly onSocketDrain = (): void => this.drained();
  private readonly onSocketClose = (): void => this.socketClosed();
  private readonly onSocketError = (err: Error): void => {
    if (this.closeError === undefined) this.closeError = err;
  };
  private readonly flushBound = (): void => this.flush();
  private readonly tickBound = (): void => this.tick();

  constructor(socket: Duplex, handler: H2Handler, options: H2ConnectionOptions) {
    this.socket = socket;
    this.handler = handler;
    this.role = options.role;
    const server = this.role === 'server';
    this.nextLocalId = server ? 2 : 1;
    this.maxConcurrent = options.maxConcurrentStreams ?? 256;
    this.localStreamWindow = options.streamWindow ?? DEFAULT_WINDOW;
    this.localMaxFrame = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.tableSize = options.headerTableSize ?? DEFAULT_TABLE_SIZE;
    const maxList = options.maxHeaderListSize ?? 65536;
    this.maxQueued = options.maxQueuedPerStream ?? 65536;
    this.settingsTimeoutMs = options.settingsTimeoutMs ?? 10_000;
    this.maxResets = options.maxResetsPerSecond ?? 1000;
    this.maxStreamErrors = options.maxStreamErrorsPerSecond ?? 1000;
    this.maxControl = options.maxControlPerSecond ?? 100;
    this.maxEmpty = options.maxEmptyFrames ?? 32;
    this.keepAliveMs = options.keepAliveMs ?? 0;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 20_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 0;
    this.highWater = options.socketHighWater ?? 262144;
    const stallMs = options.stallTimeoutMs ?? 0;
    this.stallTicks = stallMs > 0 ? Math.max(1, Math.ceil(stallMs / TICK_MS)) : 0;

    // Until the peer acknowledges our SETTINGS it may act on the protocol's defaults (RFC 9113 section
    // 6.5.3): the stream window and the decoder's table start there; only a larger frame size is safe
    // to accept at once.
    this.flow = new ConnectionFlow({ connectionWindow: options.connectionWindow ?? 16 << 20 });
    this.reader = new FrameReader({
      expectPreface: server,
      maxFrameSize: Math.max(this.localMaxFrame, DEFAULT_MAX_FRAME_SIZE),
    });
    this.decoder = new HpackDecoder({ maxHeaderListSize: maxList });
    this.encoder = new HpackEncoder({ maxTableSize: this.tableSize });
    this.assembler = new FieldBlockAssembler(options.maxFieldBlock ?? 2 * maxList);
    this.recentResets.fill(-1);

    if (typeof (socket as { setNoDelay?: unknown }).setNoDelay === 'function') {
      (socket as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    }
    socket.on('data', this.onSocketData);
    socket.on('drain', this.onSocketDrain);
    socket.on('close', this.onSocketClose);
    socket.on('error', this.onSocketError);

    // Our preface (section 3.4): the client's magic, then SETTINGS, then the connection window.
    if (!server) this.queue(PREFACE);
    const values: [number, number][] = [
      [SettingId.ENABLE_PUSH, 0],
      [SettingId.MAX_CONCURRENT_STREAMS, this.maxConcurrent],
      [SettingId.INITIAL_WINDOW_SIZE, this.localStreamWindow],
      [SettingId.MAX_FRAME_SIZE, this.localMaxFrame],
      [SettingId.MAX_HEADER_LIST_SIZE, maxList],
    ];
    if (this.tableSize !== DEFAULT_TABLE_SIZE) values.push([SettingId.HEADER_TABLE_SIZE, this.tableSize]);
    this.queue(settingsFrame(values));
    this.settingsPending++;
    const now = performance.now();
    this.settingsSentAt = now;
    this.quietSince = now;
    this.idleSince = now;
    const inc = this.flow.initialConnectionUpdate();
    if (inc > 0) this.queue(windowUpdateFrame(0, inc));
    this.timer = setInterval(this.tickBound, TICK_MS);
    this.timer.unref();
  }

  // ---- State the user may read ----

  /** Streams open now (both directions). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Client role: no stream may be opened now (the peer's limit is reached, or the connection drains). */
  get full(): boolean {
    return (
      this.closing ||
      this.goAwaySent ||
      this.goAwayReceived ||
      this.nextLocalId > MAX_STREAM_ID ||
      this.activeLocal >= this.peerSettings.maxConcurrentStreams
    );
  }

  get isClosed(): boolean {
    return this.closed || this.closing;
  }

  /** Bytes of DATA we could send on `stream` now (the smaller of its and the connection's windows). */
  sendWindow(stream: H2Stream): number {
    return this.flow.sendable(stream.flow);
  }

  // ---- Sending ----

  /** Client role: opens a stream with a request head. Returns null when full (see `full`). */
  request(fields: HeaderList, endStream: boolean): H2Stream | null {
    if (this.role !== 'client') throw new Error('h2 connection: request() on a server-role connection');
    if (this.full) {
      this.wantCapacity = true;
      return null;
    }
    const id = this.nextLocalId;
    this.nextLocalId += 2;
    const s = new H2Stream(id, this.flow.openStream(id), true);
    this.streams.set(id, s);
    this.activeLocal++;
    this.stats.streamsOpened++;
    this.sendHeaders(s, fields, endStream);
    s.headersSent = true;
    if (endStream) s.localEnded = true;
    return s;
  }

  /** Sends a response head (server role) on `stream`; a 1xx head may come before the final one. */
  respond(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    if (stream.closed) return;
    if (stream.localEnded || stream.headersSent) throw new Error(`h2 stream ${stream.id}: head already sent`);
    const status = fields.names[0] === ':status' ? fields.values[0] : undefined;
    const informational = status !== undefined && status.length === 3 && status.charCodeAt(0) === 0x31;
    if (informational && endStream) throw new Error(`h2 stream ${stream.id}: a 1xx head cannot end the stream`);
    this.sendHeaders(stream, fields, endStream);
    if (!informational) stream.headersSent = true;
    if (endStream) this.endedLocally(stream);
  }

  /**
   * Sends DATA, within the peer's windows; the rest waits in the stream's queue (the buffer is kept, not
   * copied: do not change it). Returns false when the queue is at its bound: stop writing until
   * onWritable(stream). A write on a stream that was reset is dropped (the handler heard onReset).
   */
  write(stream: H2Stream, buf: Buffer, endStream: boolean): boolean {
    if (stream.closed) return true;
    if (stream.localEnded) throw new Error(`h2 stream ${stream.id}: write after end`);
    if (!stream.headersSent) throw new Error(`h2 stream ${stream.id}: write before the head`);
    if (buf.length > 0) stream.enqueue(buf);
    if (endStream) {
      stream.localEnded = true;
      stream.endQueued = true;
    }
    this.pumpStream(stream);
    if (stream.queued > 0 || stream.endQueued || stream.trailers !== null) this.block(stream);
    if (stream.queued < this.maxQueued) return true;
    stream.wantWritable = true;
    return false;
  }

  /** Sends trailers, which end the stream, after any queued DATA. The list is kept until then. */
  trailers(stream: H2Stream, fields: HeaderList): void {
    if (stream.closed) return;
    if (stream.localEnded) throw new Error(`h2 stream ${stream.id}: trailers after end`);
    stream.localEnded = true;
    stream.trailers = fields;
    stream.endQueued = true;
    this.pumpStream(stream);
    if (stream.endQueued) this.block(stream);
  }

  /** Resets a stream with `code` (RST_STREAM, section 6.4); the handler is not called back. */
  reset(stream: H2Stream, code: number = H2ErrorCode.CANCEL): void {
    if (stream.closed) return;
    this.sendReset(stream.id, code);
    this.closeStream(stream);
  }

  /** Returns `n` bytes of a stream's DATA that were passed on: they go back to the peer's windows. */
  consumed(stream: H2Stream, n: number): void {
    if (n > stream.unconsumed) n = stream.unconsumed;
    if (n <= 0) return;
    stream.unconsumed -= n;
    // A stream the peer has ended needs no more window; the connection always does.
    if (!stream.closed && !stream.remoteEnded) {
      const inc = this.flow.releaseStream(stream.flow, n);
      if (inc > 0) this.queue(windowUpdateFrame(stream.id, inc));
    }
    this.releaseConnection(n);
  }

  /** Sends a PING; false when one is already out. The answer's RTT goes to onPing and stats.rttMs. */
  ping(): boolean {
    if (this.pingOutstanding || this.closing) return false;
    this.pingOutstanding = true;
    this.pingCounter++;
    this.pingPayload.writeUInt32BE(this.pingCounter >>> 0, 4);
    this.pingSentAt = performance.now();
    this.queue(pingFrame(this.pingPayload, false));
    return true;
  }

  /**
   * Graceful drain (section 6.8): GOAWAY with the last stream the peer opened; streams up to it finish,
   * later ones are refused, and the socket ends when none is left.
   */
  goaway(code: number = H2ErrorCode.NO_ERROR): void {
    if (this.closing) return;
    this.sendGoAway(code);
    this.maybeFinish();
  }

  /** Ends at once: GOAWAY (when not sent yet) with `code`, every stream reset, then the socket ends. */
  close(code: number = H2ErrorCode.NO_ERROR, err?: Error): void {
    if (this.closing) return;
    if (!this.goAwaySent) this.sendGoAway(code);
    this.shutdown(code, err);
  }

  // ---- Output ----

  private queue(buf: Buffer): void {
    this.out.push(buf);
    this.outBytes += buf.length;
    this.stats.framesOut++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBound);
    }
  }

  /**
   * Writes the turn's frames in one batch: the socket is corked and each piece written as is, so that
   * uncork makes one writev of them all and DATA payloads are not copied. Measured with h2load (16 x 10
   * streams, 1 kB responses, our server): a write per frame ran at a tenth of the rate; copying every
   * batch into one Buffer at 0.8-0.9x of corking; corking only batches over 16 kB at 0.9x.
   */
  private flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    const socket = this.socket;
    if (out.length === 0) {
      if (this.closing && !socket.writableEnded) socket.end();
      return;
    }
    if (socket.destroyed || !socket.writable) {
      out.length = 0;
      this.outBytes = 0;
      return;
    }
    this.stats.writes++;
    if (out.length === 1) {
      socket.write(out[0] as Buffer);
    } else {
      socket.cork();
      for (let i = 0; i < out.length; i++) socket.write(out[i] as Buffer);
      socket.uncork();
    }
    out.length = 0;
    this.outBytes = 0;
    if (socket.writableLength > this.highWater) {
      if (!this.congested) this.congestedTick = this.ticks;
      this.congested = true;
      // A peer that does not read what we send (answers to its PINGs and SETTINGS included) gets its own
      // input paused: our output for it stays within a few times the high water mark.
      if (socket.writableLength > 4 * this.highWater && !this.readPaused) {
        this.readPaused = true;
        socket.pause();
      }
    }
    if (this.closing && !socket.writableEnded) {
      socket.end();
      return;
    }
    // The batch was cut at the high water mark but the socket took it: no 'drain' will come, go on.
    if (this.cutShort && !this.congested) {
      this.cutShort = false;
      this.pump();
    }
  }

  /** Enough is waiting for the socket: DATA waits in the streams' queues (by reference) instead. */
  private saturated(): boolean {
    if (this.congested) return true;
    if (this.outBytes <= this.highWater) return false;
    this.cutShort = true;
    return true;
  }

  private drained(): void {
    this.congested = false;
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.pump();
  }

  private sendHeaders(s: H2Stream, fields: HeaderList, endStream: boolean): void {
    this.sendHeadersOn(s.id, fields, endStream);
  }

  private sendHeadersOn(id: number, fields: HeaderList, endStream: boolean): void {
    const block = this.encoder.encode(fields, FRAME_HEADER_SIZE);
    this.queue(headersFrames(block, id, endStream, this.peerSettings.maxFrameSize));
  }

  private sendReset(id: number, code: number): void {
    this.queue(rstStreamFrame(id, code));
    this.stats.resetsSent[codeIndex(code)]!++;
    this.recentResets[this.recentPos] = id;
    this.recentPos = (this.recentPos + 1) % RECENT_RESETS;
  }

  private sendGoAway(code: number, debug: string = ''): void {
    // The last stream the peer opened that we may have acted on; later ones were not (section 6.8).
    this.goAwaySent = true;
    this.goAwayLastId = this.lastPeerId;
    this.stats.goAwaySent = code;
    this.queue(goAwayFrame(this.lastPeerId, code, debug === '' ? EMPTY : Buffer.from(debug.slice(0, 256))));
  }

  private block(s: H2Stream): void {
    if (s.blocked || s.closed) return;
    s.progressTick = this.ticks;
    const list = this.blockedStreams;
    // Streams unblocked by their own WINDOW_UPDATE leave the list lazily; keep it bounded all the same.
    if (list.length > 2 * this.streams.size + 16 && !this.pumping) {
      let j = 0;
      for (let i = 0; i < list.length; i++) {
        const b = list[i] as H2Stream;
        if (!b.closed && (b.queued > 0 || b.endQueued)) list[j++] = b;
        else b.blocked = false;
      }
      list.length = j;
    }
    s.blocked = true;
    list.push(s);
  }

  /**
   * Sends what the windows allow of a stream's queue, in frames of the peer's maximum size (payloads are
   * views of the caller's buffers), then the END_STREAM or trailers owed once it is empty.
   */
  private pumpStream(s: H2Stream, budget: number = Infinity): void {
    const maxFrame = this.peerSettings.maxFrameSize;
    while (s.queued > 0 && budget > 0 && !this.saturated()) {
      let n = this.flow.sendable(s.flow);
      if (n <= 0) return;
      if (n > maxFrame) n = maxFrame;
      if (n > s.queued) n = s.queued;
      if (n > budget) n = budget;
      budget -= n;
      const last = n === s.queued && s.endQueued && s.trailers === null;
      this.queue(dataFrameHeader(s.id, n, last));
      let left = n;
      while (left > 0) {
        const head = s.queue[s.queueHead] as Buffer;
        const avail = head.length - s.queueOffset;
        const take = avail < left ? avail : left;
        this.out.push(take === head.length ? head : head.subarray(s.queueOffset, s.queueOffset + take));
        this.outBytes += take;
        left -= take;
        if (take === avail) {
          s.queue[s.queueHead] = EMPTY;
          s.queueHead++;
          s.queueOffset = 0;
        } else {
          s.queueOffset += take;
        }
      }
      if (s.queueHead === s.queue.length) {
        s.queue.length = 0;
        s.queueHead = 0;
      }
      this.flow.sent(s.flow, n);
      s.queued -= n;
      s.progressTick = this.ticks;
      if (last) {
        s.endQueued = false;
        this.endedLocally(s);
        return;
      }
    }
    if (s.queued > 0 || !s.endQueued) return;
    // The queue is empty and the end is owed: trailers, or an empty DATA with END_STREAM (which needs no
    // window, section 6.9.1).
    s.endQueued = false;
    if (s.trailers !== null) {
      const t = s.trailers;
      s.trailers = null;
      this.sendHeaders(s, t, true);
    } else {
      this.queue(dataFrameHeader(s.id, 0, true));
    }
    this.endedLocally(s);
  }

  /** Sends queued DATA of every waiting stream, a frame each in turn, while window lasts. */
  private pump(): void {
    if (this.pumping || this.blockedStreams.length === 0) return;
    this.pumping = true;
    const list = this.blockedStreams;
    let notify = false;
    let progress = true;
    while (progress && this.flow.sendWindow > 0 && !this.saturated()) {
      progress = false;
      for (let i = 0; i < list.length; i++) {
        const s = list[i] as H2Stream;
        if (s.closed) continue;
        const before = s.queued;
        const endBefore = s.endQueued;
        this.pumpStream(s, this.peerSettings.maxFrameSize);
        if (s.queued !== before || s.endQueued !== endBefore) progress = true;
        if (s.wantWritable && s.queued < this.maxQueued) notify = true;
      }
    }
    // Streams that still wait stay in the list, in order.
    let j = 0;
    for (let i = 0; i < list.length; i++) {
      const s = list[i] as H2Stream;
      if (!s.closed && (s.queued > 0 || s.endQueued)) list[j++] = s;
      else s.blocked = false;
    }
    list.length = j;
    this.pumping = false;
    if (notify) this.notifyWritable();
  }

  private notifyWritable(): void {
    for (const s of this.streams.values()) {
      if (s.wantWritable && s.queued < this.maxQueued && !s.closed) {
        s.wantWritable = false;
        this.handler.onWritable(s);
      }
    }
  }

  // ---- Stream lifecycle ----

  private endedLocally(s: H2Stream): void {
    s.localEnded = true;
    if (s.remoteEnded) this.closeStream(s);
  }

  private endedRemotely(s: H2Stream): void {
    s.remoteEnded = true;
    if (s.localEnded && !s.endQueued && s.trailers === null && s.queued === 0) this.closeStream(s);
  }

  /** Forgets a stream; its bytes not yet consumed return to the connection window when it was reset. */
  private closeStream(s: H2Stream): void {
    if (!this.streams.delete(s.id)) return;
    const wasReset = !(s.localEnded && s.remoteEnded && s.queued === 0 && !s.endQueued);
    s.closed = true;
    this.flow.closeStream(s.id);
    if (wasReset) {
      s.clearQueue();
      s.endQueued = false;
      const n = s.unconsumed;
      s.unconsumed = 0;
      if (n > 0) this.releaseConnection(n);
    }
    if (s.local) {
      this.activeLocal--;
      if (this.wantCapacity && !this.full) {
        this.wantCapacity = false;
        this.handler.onCapacity?.();
      }
    } else {
      this.activePeer--;
    }
    if (this.streams.size === 0) this.idleSince = performance.now();
    this.maybeFinish();
  }

  private releaseConnection(n: number): void {
    const inc = this.flow.releaseConnection(n);
    if (inc > 0) this.queue(windowUpdateFrame(0, inc));
  }

  /** A drain ends the socket once no stream is left. */
  private maybeFinish(): void {
    if (this.closing || this.streams.size > 0) return;
    if (this.goAwaySent || this.goAwayReceived) this.shutdown(H2ErrorCode.NO_ERROR, undefined);
  }

  /** Resets every stream (telling the handler), then ends the socket after the frames queued so far. */
  private shutdown(code: number, err: Error | undefined): void {
    if (this.closing) return;
    this.closing = true;
    if (err !== undefined && this.closeError === undefined) this.closeError = err;
    for (const s of [...this.streams.values()]) {
      this.closeStream(s);
      this.callReset(s, code === H2ErrorCode.NO_ERROR ? H2ErrorCode.CANCEL : code, true);
    }
    this.blockedStreams.length = 0;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBound);
    }
    // The peer should close after our GOAWAY; if it does not, the socket goes anyway.
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private callReset(s: H2Stream, code: number, local: boolean): void {
    try {
      this.handler.onReset(s, code, local);
    } catch {
      // The connection is ending anyway; the handler's error cannot change that.
    }
  }

  private socketClosed(): void {
    if (this.closed) return;
    this.closing = true;
    clearInterval(this.timer);
    if (this.streams.size > 0 && this.closeError === undefined) {
      this.closeError = connectionError(
        H2Codes.PEER_ERROR,
        H2ErrorCode.CANCEL,
        `socket closed with ${this.streams.size} streams open`,
      );
    }
    for (const s of [...this.streams.values()]) {
      this.closeStream(s);
      this.callReset(s, H2ErrorCode.CANCEL, true);
    }
    this.closed = true;
    // A clean end of input without GOAWAY is how many clients leave: not an error unless streams were open.
    this.handler.onClose(this.closeError);
  }

  // ---- Input ----

  private read(chunk: Buffer): void {
    if (this.closing) return;
    this.sawInput = true;
    const reader = this.reader;
    reader.push(chunk);
    for (;;) {
      try {
        if (!reader.next()) break;
        this.stats.framesIn++;
        this.frame();
      } catch (err) {
        if (!this.failed(err)) return;
      }
      if (this.closing) {
        // Drain the reader so that it is consistent, but act on nothing more.
        return;
      }
    }
  }

  /** The rescue point: a stream error resets the stream (true: go on reading), anything else ends the
   *  connection with GOAWAY (false). */
  private failed(err: unknown): boolean {
    if (err instanceof H2Error) {
      this.count(err.code);
      if (err.scope === 'stream' && err.streamId !== 0) {
        this.streamFailed(err.streamId, err.h2Code);
        return !this.closing;
      }
      this.sendGoAway(err.h2Code, err.message);
      this.shutdown(err.h2Code, err);
      return false;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    const wrapped = connectionError(H2Codes.INTERNAL, H2ErrorCode.INTERNAL_ERROR, `handler failed: ${e.message}`);
    wrapped.cause = e;
    this.count(wrapped.code);
    this.sendGoAway(H2ErrorCode.INTERNAL_ERROR);
    this.shutdown(H2ErrorCode.INTERNAL_ERROR, wrapped);
    return false;
  }

  private count(code: H2Code): void {
    this.stats.errors[code] = (this.stats.errors[code] ?? 0) + 1;
  }

  /** A stream error of the peer's making: RST_STREAM, and a bound on how often (CVE-2019-9514). */
  private streamFailed(id: number, code: number): void {
    if (++this.streamErrorsThisTick > this.maxStreamErrors) {
      this.failed(this.flood('reset_flood', 'too many stream errors caused by the peer'));
      return;
    }
    const s = this.streams.get(id);
    if (this.recentlyReset(id) && s === undefined) return;
    this.sendReset(id, code);
    if (s !== undefined) {
      this.closeStream(s);
      this.callReset(s, code, true);
    }
  }

  private recentlyReset(id: number): boolean {
    const r = this.recentResets;
    for (let i = 0; i < RECENT_RESETS; i++) if (r[i] === id) return true;
    return false;
  }

  /** Whether `id` belongs to the peer's side (odd ids are the client's, section 5.1.1). */
  private isPeerId(id: number): boolean {
    return (id & 1) === (this.role === 'server' ? 1 : 0);
  }

  /** Whether `id` was never opened: above the last the peer opened, or the last we opened. */
  private isIdle(id: number): boolean {
    return this.isPeerId(id) ? id > this.lastPeerId : id >= this.nextLocalId;
  }

  private frame(): void {
    const r = this.reader;
    switch (r.type) {
      case FrameType.DATA:
        return this.data();
      case FrameType.HEADERS: {
        const fragment = headersFragment(r);
        this.blockStream = r.streamId;
        this.blockEndStream = (r.flags & Flag.END_STREAM) !== 0;
        const block = this.assembler.start(fragment, (r.flags & Flag.END_HEADERS) !== 0);
        if (block !== null) this.fieldBlock(block);
        return;
      }
      case FrameType.CONTINUATION: {
        const block = this.assembler.add(continuationFragment(r), (r.flags & Flag.END_HEADERS) !== 0);
        if (block !== null) this.fieldBlock(block);
        return;
      }
      case FrameType.PRIORITY:
        checkPriority(r); // deprecated (section 5.3.2): checked, then ignored
        return;
      case FrameType.RST_STREAM:
        return this.rstStream();
      case FrameType.SETTINGS:
        return this.settings();
      case FrameType.PUSH_PROMISE:
        refusePushPromise(r);
        return;
      case FrameType.PING:
        return this.pingFrame();
      case FrameType.GOAWAY:
        return this.goAwayFrame();
      case FrameType.WINDOW_UPDATE:
        return this.windowUpdate();
      default:
        return; // unknown types are ignored (section 5.5)
    }
  }

  private data(): void {
    const r = this.reader;
    const id = r.streamId;
    const frameLen = r.length;
    let off = r.offset;
    let len = frameLen;
    if ((r.flags & Flag.PADDED) !== 0 || id === 0) {
      const p = dataPayload(r); // checks stream 0 and the padding
      off = p.byteOffset - r.data.byteOffset;
      len = p.length;
    }
    const endStream = (r.flags & Flag.END_STREAM) !== 0;
    if (frameLen === 0 && !endStream) {
      if (++this.emptyInARow > this.maxEmpty) throw this.flood('empty_frame_flood', 'flood of empty data frames');
    } else {
      this.emptyInARow = 0;
    }
    const s = this.streams.get(id);
    if (s === undefined || s.remoteEnded) {
      if (this.isIdle(id)) {
        throw connectionError(H2Codes.STREAM_STATE, H2ErrorCode.PROTOCOL_ERROR, `data on idle stream ${id}`);
      }
      // Still counted against the connection window (section 6.9), then given back at once.
      this.flow.received(null, frameLen);
      this.releaseConnection(frameLen);
      if (s === undefined && this.recentlyReset(id)) return;
      throw streamError(H2Codes.STREAM_STATE, H2ErrorCode.STREAM_CLOSED, id, `data on closed stream ${id}`);
    }
    this.flow.received(s.flow, frameLen);
    if (!s.headersReceived) {
      this.releaseConnection(frameLen);
      throw streamError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, id, `data before headers on stream ${id}`);
    }
    if (s.contentLength >= 0) {
      s.dataReceived += len;
      if (s.dataReceived > s.contentLength || (endStream && s.dataReceived !== s.contentLength)) {
        this.releaseConnection(frameLen);
        throw streamError(H2Codes.MALFORMED, H2ErrorCode.PROTOCOL_ERROR, id, `data does not match content-length`);
      }
    }
    // Padding is ours to give back at once; the payload is the handler's to return with consumed().
    s.unconsumed += len;
    const pad = frameLen - len;
    if (pad > 0) {
      const inc = this.flow.releaseStream(s.flow, pad);
      if (inc > 0) this.queue(windowUpdateFrame(id, inc));
      this.releaseConnection(pad);
    }
    if (endStream) s.remoteEnded = true;
    this.handler.onData(s, r.data, off, len, endStream);
    if (endStream && !s.closed) this.endedRemotely(s);
  }

  /** A complete field block for `blockStream`: always decoded (the HPACK table must stay in step with the
   *  peer's, section 4.3), then acted on as the stream's state allows. */
  private fieldBlock(block: Buffer): void {
    const id = this.blockStream;
    const endStream = this.blockEndStream;
    this.blockStream = NO_BLOCK;
    const s = this.streams.get(id);
    let fields: HeaderList | null = new HeaderList();
    let tooLarge: H2Error | null = null;
    try {
      this.decoder.decode(block, fields);
    } catch (err) {
      if (!(err instanceof H2Error) || err.scope !== 'stream') throw err;
      tooLarge = err;
      fields = null;
    }
    if (s === undefined) {
      if (!this.isPeerId(id)) {
        if (this.isIdle(id)) {
          throw connectionError(H2Codes.STREAM_STATE, H2ErrorCode.PROTOCOL_ERROR, `headers on idle stream ${id}`);
        }
        if (this.recentlyReset(id)) return;
        throw streamError(H2Codes.STREAM_STATE, H2ErrorCode.STREAM_CLOSED, id, `headers on closed stream ${id}`);
      }
      if (this.role === 'client') {
        // A server opens streams only with PUSH_PROMISE, which we never enable (section 8.4).
        throw connectionError(H2Codes.STREAM_STATE, H2ErrorCode.PROTOCOL_ERROR, `headers on server stream ${id}`);
      }
      if (id <= this.lastPeerId) {
        if (this.recentlyReset(id)) return;
        // Section 5.1.1: a new stream's id must exceed every id the peer opened before.
        throw connectionError(
          H2Codes.STREAM_STATE,
          H2ErrorCode.PROTOCOL_ERROR,
          `stream id ${id} is not above the last one, ${this.lastPeerId}`,
        );
      }
      this.openPeerStream(id, fields, tooLarge, endStream);
      return;
    }
    if (s.remoteEnded) {
      throw streamError(H2Codes.STREAM_STATE, H2ErrorCode.STREAM_CLOSED, id, `headers after end_stream on ${id}`);
    }
    if (tooLarge !== null || fields === null) {
      throw streamError(H2Codes.HEADER_LIST_TOO_LARGE, H2ErrorCode.PROTOCOL_ERROR, id, tooLarge?.message ?? '');
    }
    if (s.headersReceived) {
      // Trailers (section 8.1): they must end the stream.
      if (!endStream) {
        throw streamError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, id, `trailers without end_stream on ${id}`);
      }
      const bad = checkFields(fields, Section.TRAILERS);
      if (bad !== null) throw streamError(H2Codes.MALFORMED, H2ErrorCode.PROTOCOL_ERROR, id, bad);
      if (s.contentLength >= 0 && s.dataReceived !== s.contentLength) {
        throw streamError(H2Codes.MALFORMED, H2ErrorCode.PROTOCOL_ERROR, id, 'data does not match content-length');
      }
      s.remoteEnded = true;
      this.handler.onTrailers(s, fields);
      if (!s.closed) this.endedRemotely(s);
      return;
    }
    const bad = checkFields(fields, s.local ? Section.RESPONSE : Section.REQUEST);
    if (bad !== null) throw streamError(H2Codes.MALFORMED, H2ErrorCode.PROTOCOL_ERROR, id, bad);
    const status = fields.names[0] === ':status' ? fields.values[0] : undefined;
    if (status !== undefined && status.length === 3 && status.charCodeAt(0) === 0x31) {
      // A 1xx head (section 8.1): informational, the final one follows; it cannot end the stream.
      if (endStream) {
        throw streamError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, id, `1xx head with end_stream on ${id}`);
      }
      this.handler.onInformational?.(s, fields);
      return;
    }
    s.headersReceived = true;
    if (endStream) s.remoteEnded = true;
    this.handler.onHeaders(s, fields, endStream);
    if (endStream && !s.closed) this.endedRemotely(s);
  }

  /** REFUSED_STREAM for a new stream; refusals count in the bound on stream errors, since each costs us a
   *  decode and a frame while the peer may open streams for ever. */
  private refuse(id: number): void {
    if (++this.streamErrorsThisTick > this.maxStreamErrors) throw this.flood('reset_flood', 'too many refused streams');
    this.stats.streamsRefused++;
    this.count(H2Codes.REFUSED_STREAM);
    this.sendReset(id, H2ErrorCode.REFUSED_STREAM);
  }

  /** A flood's connection error, its kind counted (the code, FLOOD, is counted by the rescue point). */
  private flood(kind: HostileKind, message: string): H2Error {
    this.hostile(kind);
    return connectionError(H2Codes.FLOOD, H2ErrorCode.ENHANCE_YOUR_CALM, message);
  }

  private hostile(kind: HostileKind): void {
    this.stats.hostile[kind] = (this.stats.hostile[kind] ?? 0) + 1;
  }

  private openPeerStream(id: number, fields: HeaderList | null, tooLarge: H2Error | null, endStream: boolean): void {
    this.lastPeerId = id;
    if (this.goAwaySent && id > this.goAwayLastId) {
      // After our GOAWAY new streams are not processed (section 6.8); REFUSED_STREAM says "retry".
      this.refuse(id);
      return;
    }
    if (this.activePeer >= this.maxConcurrent) {
      // Section 5.1.2: over our limit is a stream error, REFUSED_STREAM so that the client may retry.
      this.refuse(id);
      return;
    }
    if (tooLarge !== null || fields === null) {
      // A head over our limit: refuse this stream only, with a 431 so that the client learns why
      // (RFC 6585 section 5), then RST_STREAM if it was still sending (section 8.1).
      this.count(H2Codes.HEADER_LIST_TOO_LARGE);
      if (++this.streamErrorsThisTick > this.maxStreamErrors)
        throw this.flood('reset_flood', 'too many refused streams');
      this.sendHeadersOn(id, new HeaderList().add(':status', '431'), true);
      if (!endStream) this.sendReset(id, H2ErrorCode.NO_ERROR);
      return;
    }
    const bad = checkFields(fields, Section.REQUEST);
    if (bad !== null) {
      // Malformed (section 8.1.1): the handler never sees it.
      this.count(H2Codes.MALFORMED);
      this.streamFailed(id, H2ErrorCode.PROTOCOL_ERROR);
      return;
    }
    const s = new H2Stream(id, this.flow.openStream(id), false);
    s.contentLength = checkedContentLength;
    if (endStream && s.contentLength > 0) {
      this.count(H2Codes.MALFORMED);
      this.streamFailed(id, H2ErrorCode.PROTOCOL_ERROR);
      return;
    }
    this.streams.set(id, s);
    this.activePeer++;
    this.stats.streamsOpened++;
    s.headersReceived = true;
    if (endStream) s.remoteEnded = true;
    this.handler.onHeaders(s, fields, endStream);
  }

  private rstStream(): void {
    const r = this.reader;
    const code = rstStreamCode(r);
    const id = r.streamId;
    if (this.isIdle(id)) {
      throw connectionError(H2Codes.STREAM_STATE, H2ErrorCode.PROTOCOL_ERROR, `rst_stream on idle stream ${id}`);
    }
    this.stats.resetsReceived[codeIndex(code)]!++;
    // Rapid reset (CVE-2023-44487): each reset stream may have cost us (and the upstream) a request.
    if (++this.resetsThisTick > this.maxResets) throw this.flood('rapid_reset', 'too many stream resets from the peer');
    const s = this.streams.get(id);
    if (s === undefined) return;
    this.closeStream(s);
    this.handler.onReset(s, code, false);
  }

  private settings(): void {
    const r = this.reader;
    if (parseSettings(r, this.peerSettings, this.role === 'client')) {
      this.settingsAcked();
      return;
    }
    if (++this.settingsThisTick > this.maxControl) throw this.flood('settings_flood', 'flood of settings frames');
    const p = this.peerSettings;
    // The encoder must signal the smallest table size of the frame before the final one (RFC 7541 4.2).
    this.encoder.setPeerMaxTableSize(p.lowestHeaderTableSize);
    this.encoder.setPeerMaxTableSize(p.headerTableSize);
    this.flow.peerInitialWindowChanged(p.initialWindowSize);
    this.queue(settingsAckFrame());
    const first = !this.peerSettingsSeen;
    this.peerSettingsSeen = true;
    if (this.wantCapacity && !this.full) {
      this.wantCapacity = false;
      this.handler.onCapacity?.();
    }
    if (first) this.handler.onReady?.();
    this.pump();
  }

  /** The peer acknowledged our SETTINGS: now they bind it (section 6.5.3). */
  private settingsAcked(): void {
    if (this.settingsPending === 0) {
      throw connectionError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, 'settings ack without settings');
    }
    this.settingsPending--;
    this.decoder.setMaxTableSize(this.tableSize);
    this.flow.localInitialWindowChanged(this.localStreamWindow);
    this.reader.maxFrameSize = this.localMaxFrame;
    // Bytes released under the old window's threshold may be due now: a peer waiting for them would
    // otherwise wait for ever, as no more DATA comes to trigger the update.
    for (const s of this.streams.values()) {
      if (s.remoteEnded) continue;
      const inc = this.flow.releaseStream(s.flow, 0);
      if (inc > 0) this.queue(windowUpdateFrame(s.id, inc));
    }
  }

  private pingFrame(): void {
    const r = this.reader;
    const data = pingData(r);
    if ((r.flags & Flag.ACK) !== 0) {
      if (this.pingOutstanding && data.equals(this.pingPayload)) {
        this.pingOutstanding = false;
        const rtt = performance.now() - this.pingSentAt;
        this.stats.rttMs = rtt;
        this.handler.onPing?.(rtt);
      }
      return;
    }
    if (++this.pingsThisTick > this.maxControl) throw this.flood('ping_flood', 'flood of ping frames');
    this.queue(pingFrame(data, true));
  }

  private goAwayFrame(): void {
    const g = parseGoAway(this.reader);
    this.goAwayReceived = true;
    this.stats.goAwayReceived = g.errorCode;
    if (g.errorCode !== H2ErrorCode.NO_ERROR) this.count(H2Codes.PEER_ERROR);
    // Streams we opened above lastStreamId were not processed: safe to retry elsewhere (section 6.8).
    for (const s of [...this.streams.values()]) {
      if (s.local && s.id > g.lastStreamId) {
        this.closeStream(s);
        this.handler.onReset(s, H2ErrorCode.REFUSED_STREAM, true);
      }
    }
    this.handler.onGoAway?.(g.lastStreamId, g.errorCode);
    this.maybeFinish();
  }

  private windowUpdate(): void {
    const r = this.reader;
    const id = r.streamId;
    const inc = windowIncrement(r);
    if (id === 0) {
      this.flow.windowUpdate(null, inc);
      this.pump();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (this.isIdle(id)) {
        throw connectionError(H2Codes.STREAM_STATE, H2ErrorCode.PROTOCOL_ERROR, `window_update on idle stream ${id}`);
      }
      return; // closed: allowed for a while (section 5.1)
    }
    this.flow.windowUpdate(s.flow, inc);
    if (s.queued > 0 || s.endQueued) {
      this.pumpStream(s);
      if (s.wantWritable && s.queued < this.maxQueued) {
        s.wantWritable = false;
        this.handler.onWritable(s);
      }
    }
  }

  // ---- Timers ----

  /**
   * DATA we owe the peer that made no progress for the stall timeout. A socket that takes nothing ends
   * the connection (nothing else could reach the peer); a stream whose window stays shut is reset with
   * CANCEL, the handler told as for a stream error. True when the connection ends.
   */
  private stalled(): boolean {
    // A mark of tick P was made within the tick that began then: at least `stallTicks` whole ticks have
    // passed since it when P <= ticks - stallTicks - 1.
    const limit = this.ticks - this.stallTicks - 1;
    if (this.congested && this.congestedTick <= limit) {
      this.hostile('slow_read');
      this.failed(
        connectionError(
          H2Codes.SEND_STALLED,
          H2ErrorCode.ENHANCE_YOUR_CALM,
          `the peer read nothing for ${this.stallTicks}s with ${this.socket.writableLength} bytes waiting`,
        ),
      );
      return true;
    }
    if (this.congested || this.pumping) return false;
    for (const s of [...this.blockedStreams]) {
      if (s.closed || s.queued === 0 || s.progressTick > limit || this.flow.sendable(s.flow) > 0) continue;
      this.hostile('zero_window');
      this.count(H2Codes.SEND_STALLED);
      this.sendReset(s.id, H2ErrorCode.CANCEL);
      this.closeStream(s);
      this.callReset(s, H2ErrorCode.CANCEL, true);
      if (this.closing) return true;
    }
    return false;
  }

  /** Once a second: the flood counters start over, and the timeouts are checked. */
  private tick(): void {
    this.resetsThisTick = 0;
    this.streamErrorsThisTick = 0;
    this.pingsThisTick = 0;
    this.settingsThisTick = 0;
    this.ticks++;
    if (this.closing) return;
    if (this.stallTicks > 0 && this.stalled()) return;
    const now = performance.now();
    if (this.settingsPending > 0 && now - this.settingsSentAt > this.settingsTimeoutMs) {
      this.failed(connectionError(H2Codes.SETTINGS_TIMEOUT, H2ErrorCode.SETTINGS_TIMEOUT, 'settings not acknowledged'));
      return;
    }
    if (this.sawInput) {
      this.sawInput = false;
      this.quietSince = now;
    }
    if (this.pingOutstanding && now - this.pingSentAt > this.pingTimeoutMs) {
      const err = connectionError(H2Codes.PING_TIMEOUT, H2ErrorCode.NO_ERROR, 'keep-alive ping not answered');
      this.count(err.code);
      this.sendGoAway(H2ErrorCode.NO_ERROR);
      this.shutdown(H2ErrorCode.NO_ERROR, err);
      return;
    }
    if (this.keepAliveMs > 0 && !this.pingOutstanding && now - this.quietSince >= this.keepAliveMs) this.ping();
    if (this.idleTimeoutMs > 0 && this.streams.size === 0 && now - this.idleSince >= this.idleTimeoutMs) {
      this.goaway(H2ErrorCode.NO_ERROR);
    }
  }
}
