// One HTTP/2 stream as the connection keeps it: a plain object of fields (no emitter, no closures), its
// state in the RFC 9113 section 5.1 sense, its windows, and the DATA queued beyond the peer's window.
import type { HeaderList } from './hpack.js';
import type { StreamFlow } from './flow.js';

/** Stream states of RFC 9113 section 5.1 (reserved states never occur: we never enable push). */
export const StreamState = {
  IDLE: 0,
  OPEN: 1,
  HALF_CLOSED_LOCAL: 2,
  HALF_CLOSED_REMOTE: 3,
  CLOSED: 4,
} as const;
export type StreamStateValue = (typeof StreamState)[keyof typeof StreamState];

const EMPTY_QUEUE: Buffer[] = [];

export class H2Stream {
  readonly id: number;
  readonly flow: StreamFlow;
  /** Whether we opened the stream (client role), or the peer did. */
  readonly local: boolean;
  /** The handler's own slot, e.g. the stream it forwards to. The connection never reads it. */
  user: unknown = null;

  /** We sent END_STREAM (or it is queued behind DATA: see endQueued). */
  localEnded = false;
  /** The peer sent END_STREAM. */
  remoteEnded = false;
  /** Reset either way, or the connection closed under it. */
  closed = false;
  /** The final (non-1xx) HEADERS came from the peer: the next HEADERS are trailers. */
  headersReceived = false;
  /** We sent final HEADERS. */
  headersSent = false;

  /** DATA bytes received and handed to the handler but not yet returned with consumed(). */
  unconsumed = 0;
  /** The request's content-length (server role), -1 when absent, and the DATA bytes received so far:
   *  they must agree at END_STREAM (RFC 9113 section 8.1.1). */
  contentLength = -1;
  dataReceived = 0;

  /** DATA waiting for window: whole caller buffers, the first one sent up to queueOffset. */
  queue: Buffer[] = EMPTY_QUEUE;
  queueHead = 0;
  queueOffset = 0;
  /** Bytes in the queue. */
  queued = 0;
  /** END_STREAM goes out once the queue is empty (on the last DATA frame, or on the trailers). */
  endQueued = false;
  /** Trailers to send once the queue is empty. */
  trailers: HeaderList | null = null;
  /** write() said "stop": onWritable is owed when the queue drops under its bound. */
  wantWritable = false;
  /** In the connection's list of streams that wait for window. */
  blocked = false;
  /** The connection's tick when this stream last sent DATA or started waiting (its stall timeout). */
  progressTick = 0;

  constructor(id: number, flow: StreamFlow, local: boolean) {
    this.id = id;
    this.flow = flow;
    this.local = local;
  }

  get state(): StreamStateValue {
    if (this.closed || (this.localEnded && this.remoteEnded)) return StreamState.CLOSED;
    if (this.localEnded) return StreamState.HALF_CLOSED_LOCAL;
    if (this.remoteEnded) return StreamState.HALF_CLOSED_REMOTE;
    return StreamState.OPEN;
  }

  /** Appends a caller's buffer to the queue (kept as is: the caller must not change it afterwards). */
  enqueue(buf: Buffer): void {
    if (this.queue === EMPTY_QUEUE) this.queue = [];
    this.queue.push(buf);
    this.queued += buf.length;
  }

  /** Drops the queue (the stream was reset). */
  clearQueue(): void {
    this.queue = EMPTY_QUEUE;
    this.queueHead = 0;
    this.queueOffset = 0;
    this.queued = 0;
    this.trailers = null;
  }
}
