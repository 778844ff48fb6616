// HTTP/2 flow control (RFC 9113 sections 5.2 and 6.9): the send and receive windows of the connection
// and of each open stream, the checks that make a peer's mistakes errors, and when to send WINDOW_UPDATE.
// A proxy releases received bytes when it has written them onward, so a slow reader slows its writer.
import { connectionError, H2Codes, H2ErrorCode, streamError } from './errors.js';
import { DEFAULT_WINDOW, MAX_WINDOW } from './frames.js';

/** The windows of one stream. */
export class StreamFlow {
  /** Bytes we may still send on the stream (the peer's grant). Negative after the peer lowered
   *  SETTINGS_INITIAL_WINDOW_SIZE below what was in flight (section 6.9.2). */
  sendWindow: number;
  /** Bytes the peer may still send us on the stream. */
  recvWindow: number;
  /** Bytes received and released but not yet given back with WINDOW_UPDATE. */
  recvReleased = 0;

  constructor(
    readonly id: number,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }
}

export interface FlowOptions {
  /** Our SETTINGS_INITIAL_WINDOW_SIZE, in bytes: each stream's receive window (default 65535). */
  streamWindow?: number;
  /** The connection's receive window we keep, in bytes (default 65535); a larger one is opened with a
   *  WINDOW_UPDATE on stream 0 at the start (initialConnectionUpdate), since no setting changes it. */
  connectionWindow?: number;
}

const flowConnection = (message: string) =>
  connectionError(H2Codes.FLOW_CONTROL, H2ErrorCode.FLOW_CONTROL_ERROR, message);

/**
 * The windows of a connection and of its open streams, both directions. WINDOW_UPDATE policy: a window
 * is given back once half of it has been released (received and passed on), in one update, so that a
 * steady stream costs one small frame per half window rather than one per DATA frame.
 */
export class ConnectionFlow {
  /** Bytes we may still send on the connection. */
  sendWindow = DEFAULT_WINDOW;
  /** Bytes the peer may still send us on the connection. */
  recvWindow = DEFAULT_WINDOW;
  recvReleased = 0;
  /** The peer's SETTINGS_INITIAL_WINDOW_SIZE: the send window of new streams. */
  peerInitialWindow = DEFAULT_WINDOW;
  /** Ours, once acknowledged: the receive window of new streams. */
  localInitialWindow: number;
  readonly connectionTarget: number;
  readonly streams = new Map<number, StreamFlow>();

  constructor(options: FlowOptions = {}) {
    this.localInitialWindow = options.streamWindow ?? DEFAULT_WINDOW;
    this.connectionTarget = options.connectionWindow ?? DEFAULT_WINDOW;
    if (this.localInitialWindow > MAX_WINDOW || this.connectionTarget > MAX_WINDOW) {
      throw new RangeError('flow control windows cannot exceed 2^31-1');
    }
  }

  /**
   * The increment to send on stream 0 right after our SETTINGS, to open the connection window from
   * 65535 to connectionWindow (0: nothing to send). A smaller target cannot be had (section 6.9.2).
   */
  initialConnectionUpdate(): number {
    const inc = this.connectionTarget - DEFAULT_WINDOW;
    if (inc <= 0) return 0;
    this.recvWindow += inc;
    return inc;
  }

  openStream(id: number): StreamFlow {
    const s = new StreamFlow(id, this.peerInitialWindow, this.localInitialWindow);
    this.streams.set(id, s);
    return s;
  }

  closeStream(id: number): void {
    this.streams.delete(id);
  }

  /** Bytes of DATA we may send on `s` now. */
  sendable(s: StreamFlow): number {
    const n = Math.min(this.sendWindow, s.sendWindow);
    return n > 0 ? n : 0;
  }

  /** Accounts for `n` bytes of DATA (the whole frame length, padding included) sent on `s`. */
  sent(s: StreamFlow, n: number): void {
    if (n > this.sendable(s)) throw new RangeError(`sending ${n} bytes on stream ${s.id} exceeds its window`);
    this.sendWindow -= n;
    s.sendWindow -= n;
  }

  /** A WINDOW_UPDATE from the peer, on `s` or on the connection (null). Past 2^31-1 it is a stream or a
   *  connection FLOW_CONTROL_ERROR as appropriate (section 6.9.1). */
  windowUpdate(s: StreamFlow | null, increment: number): void {
    if (s === null) {
      if (this.sendWindow + increment > MAX_WINDOW) throw flowConnection('connection window above 2^31-1');
      this.sendWindow += increment;
      return;
    }
    if (s.sendWindow + increment > MAX_WINDOW) {
      throw streamError(H2Codes.FLOW_CONTROL, H2ErrorCode.FLOW_CONTROL_ERROR, s.id, 'stream window above 2^31-1');
    }
    s.sendWindow += increment;
  }

  /**
   * The peer's new SETTINGS_INITIAL_WINDOW_SIZE: every open stream's send window moves by the difference,
   * and may go negative; one pushed past 2^31-1 is a connection error (section 6.9.2). The connection
   * window does not move.
   */
  peerInitialWindowChanged(value: number): void {
    const delta = value - this.peerInitialWindow;
    this.peerInitialWindow = value;
    if (delta === 0) return;
    for (const s of this.streams.values()) {
      s.sendWindow += delta;
      if (s.sendWindow > MAX_WINDOW) throw flowConnection(`stream ${s.id} window above 2^31-1 after settings`);
    }
  }

  /** Our new SETTINGS_INITIAL_WINDOW_SIZE, once acknowledged: every open stream's receive window moves. */
  localInitialWindowChanged(value: number): void {
    const delta = value - this.localInitialWindow;
    this.localInitialWindow = value;
    for (const s of this.streams.values()) s.recvWindow += delta;
  }

  /**
   * A DATA frame of `length` bytes (the whole frame, padding included, section 6.9.1) received on `s`, or
   * on a stream we no longer track (null): it still counts against the connection (section 6.9). More
   * than a window allows is a FLOW_CONTROL_ERROR of the connection, or of the stream when only the
   * stream's window is exceeded.
   */
  received(s: StreamFlow | null, length: number): void {
    if (length > this.recvWindow) {
      throw flowConnection(`peer sent ${length} bytes with ${this.recvWindow} left in the connection window`);
    }
    this.recvWindow -= length;
    if (s === null) return;
    if (length > s.recvWindow) {
      throw streamError(
        H2Codes.FLOW_CONTROL,
        H2ErrorCode.FLOW_CONTROL_ERROR,
        s.id,
        `peer sent ${length} bytes with ${s.recvWindow} left in the stream window`,
      );
    }
    s.recvWindow -= length;
  }

  /** `n` received bytes of `s` were passed on: returns the WINDOW_UPDATE increment to send on the stream
   *  now, or 0 to wait for more. (Not worth calling once the peer ended the stream.) */
  releaseStream(s: StreamFlow, n: number): number {
    s.recvReleased += n;
    if (s.recvReleased === 0 || s.recvReleased * 2 < this.localInitialWindow) return 0;
    const inc = s.recvReleased;
    s.recvReleased = 0;
    s.recvWindow += inc;
    return inc;
  }

  /** `n` received bytes were passed on, or dropped (a reset stream's): returns the WINDOW_UPDATE
   *  increment to send on stream 0 now, or 0 to wait for more. */
  releaseConnection(n: number): number {
    this.recvReleased += n;
    if (this.recvReleased === 0 || this.recvReleased * 2 < this.connectionTarget) return 0;
    const inc = this.recvReleased;
    this.recvReleased = 0;
    this.recvWindow += inc;
    return inc;
  }
}
