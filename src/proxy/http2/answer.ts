// The answer half of a forwarded HTTP/2 stream, from the moment the proxy takes an upstream's response
// head until the client's stream is done: head, body (piped, so flow control holds end to end),
// trailers, and every way an answer can end. It keeps the promises gRPC clients rely on: a gRPC answer
// always ends with grpc-status (the proxy's INTERNAL when the upstream sent none, UNAVAILABLE when the
// upstream went away mid-answer), an upstream's reset reaches the client as the same reset, and each
// ending is reported once, classified, so that metrics, tap and spans never call a cut answer a success.
import http2, {
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { Codes, ProxyError } from '../errors/errors.js';
import { errorLabel } from '../metrics.js';
import { GrpcStatus, grpcMessage, grpcStatusOf, grpcStatusOfHttp, grpcStatusOfReset } from '../../api/grpc/protocol.js';
import { forwardable } from './headers.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** How an answer ended. */
export interface AnswerEnd {
  /** The :status the client got. */
  readonly status: number;
  /** gRPC only: the status the client ends with (sent, or what it derives from a reset or an HTTP status). */
  readonly grpcStatus: number | undefined;
  /** The answer did not end as a whole response: reset, cut off, or a gRPC answer without a status. */
  readonly failed: boolean;
  /** Why it failed, for tap and spans: a proxy error code in request_errors_total's form, "reset" or "cancelled". */
  readonly reason: string | undefined;
  /** Set when the proxy itself ended or mended the answer (it counts in request_errors_total). */
  readonly error: ProxyError | undefined;
}

export interface AnswerOptions {
  readonly grpc: boolean;
  /** The upstream, as messages name it. */
  readonly label: string;
  /** Rewrites the response head before it goes out (route filters). */
  readonly modify?: (h: OutgoingHttpHeaders) => void;
  /** Called once, when the answer is over, whichever way. */
  readonly done: (end: AnswerEnd) => void;
}

/**
 * Sends RST_STREAM with `code` once this side's END_STREAM (trailers or last DATA) has been written.
 * Node drops trailers still queued inside nghttp2 when the stream is reset in the same turn (the
 * HEADERS of a closing stream are never sent), which cut grpc-status off answers. A stream whose peer
 * finishes meanwhile closes by itself and is left alone.
 */
export function resetAfterEnd(stream: ServerHttp2Stream, code: number): void {
  let waits = 0;
  const check = () => {
    if (stream.closed || stream.destroyed) return;
    const st = stream.state;
    if (st.remoteClose === 1 && code === NGHTTP2_NO_ERROR) return;
    if (st.localClose === 1) {
      stream.close(code);
      return;
    }
    // Usually written on the next turn; a socket the peer reads slowly may take longer.
    waits++;
    if (waits < 3) setImmediate(check);
    else setTimeout(check, Math.min(1000, 5 * 2 ** (waits - 3)));
  };
  setImmediate(check);
}

export class Answer {
  readonly status: number;
  readonly #down: ServerHttp2Stream;
  readonly #up: ClientHttp2Stream;
  /** The upstream stream's session, kept: a stream ended by its connection's loss looks like a CANCEL. */
  readonly #upSession: http2.Http2Session | undefined;
  readonly #o: AnswerOptions;
  #trailers: IncomingHttpHeaders | undefined;
  /** The proxy ends the answer itself (the upstream went away, a timeout): these trailers instead. */
  #override: { grpcStatus: number; error: ProxyError } | undefined;
  /** The whole answer, END_STREAM included, is handed to the client's stream. */
  #sent = false;
  /** The upstream closed its stream cleanly. */
  #upClean = false;
  #finished = false;

  /** Starts the answer with the upstream's response head (`flags` as the 'response' event gave them). */
  constructor(
    down: ServerHttp2Stream,
    up: ClientHttp2Stream,
    head: IncomingHttpHeaders,
    flags: number,
    o: AnswerOptions,
  ) {
    this.#down = down;
    this.#up = up;
    this.#upSession = up.session;
    this.#o = o;
    this.status = Number(head[':status']) || 0;
    const out = forwardable(head);
    o.modify?.(out);
    up.on('close', () => this.#upClosed());
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      // A head that ends the stream: for gRPC, a "trailers-only" answer, which must carry the status.
      const end = this.#ending(head, out);
      this.#sent = true;
      down.respond(out, { endStream: true });
      this.#finish(end);
      return;
    }
    up.on('trailers', (t: IncomingHttpHeaders) => (this.#trailers = t));
    down.on('wantTrailers', () => this.#sendTrailers());
    down.on('close', () => this.#downClosed());
    down.respond(out, { waitForTrailers: true });
    up.pipe(down);
  }

  /** The whole answer went to the client's stream. */
  get sent(): boolean {
    return this.#sent;
  }

  /** The proxy ends the answer early (a route timeout): gRPC gets `err`'s status, HTTP a reset. */
  abort(err: ProxyError, grpcStatus: number): void {
    if (this.#finished || this.#sent) return;
    this.#cut(err, grpcStatus);
  }

  /** What `out` (the last header block) ends the answer with; adds the proxy's status where gRPC has none. */
  #ending(last: IncomingHttpHeaders | undefined, out: OutgoingHttpHeaders): AnswerEnd {
    const { grpc, label } = this.#o;
    if (!grpc)
      return { status: this.status, grpcStatus: undefined, failed: false, reason: undefined, error: undefined };
    const gs = grpcStatusOf(last);
    if (gs !== undefined)
      return { status: this.status, grpcStatus: gs, failed: false, reason: undefined, error: undefined };
    // Not 200: the client derives a status from the HTTP one, as the proxy counts it.
    if (this.status !== 200)
      return {
        status: this.status,
        grpcStatus: grpcStatusOfHttp(this.status),
        failed: false,
        reason: undefined,
        error: undefined,
      };
    const error = new ProxyError(
      Codes.GRPC_STATUS_MISSING,
      `upstream ${label}: the grpc response ended without grpc-status`,
    );
    out['grpc-status'] = String(GrpcStatus.INTERNAL);
    out['grpc-message'] = grpcMessage(`outrigger proxy: ${error.message}`);
    return { status: this.status, grpcStatus: GrpcStatus.INTERNAL, failed: true, reason: errorLabel(error), error };
  }

  #sendTrailers(): void {
    const ov = this.#override;
    let t: OutgoingHttpHeaders;
    let end: AnswerEnd;
    if (ov !== undefined) {
      t = { 'grpc-status': String(ov.grpcStatus), 'grpc-message': grpcMessage(`outrigger proxy: ${ov.error.message}`) };
      end = {
        status: this.status,
        grpcStatus: ov.grpcStatus,
        failed: true,
        reason: errorLabel(ov.error),
        error: ov.error,
      };
    } else {
      t = this.#trailers !== undefined ? forwardable(this.#trailers) : {};
      end = this.#ending(this.#trailers, t);
    }
    this.#down.sendTrailers(t);
    this.#sent = true;
    this.#finish(end);
    this.#stopUploadIfDone();
  }

  #upClosed(): void {
    const up = this.#up;
    const down = this.#down;
    const code = up.rstCode ?? NGHTTP2_NO_ERROR;
    if (this.#sent) {
      if (code === NGHTTP2_NO_ERROR) {
        this.#upClean = true;
        this.#stopUploadIfDone();
      }
      return;
    }
    // Already ending on the proxy's terms, or the client is gone.
    if (this.#finished || this.#override !== undefined || down.closed || down.destroyed) return;
    // Closed after its end (a gRPC end is its trailers; Node also ends a stream whose connection died):
    // the rest is on its way through the pipe, the trailers go on 'wantTrailers'.
    if (up.readableEnded && (code === NGHTTP2_NO_ERROR || this.#trailers !== undefined)) {
      this.#upClean = code === NGHTTP2_NO_ERROR;
      return;
    }
    const connectionLost = this.#upSession?.destroyed === true;
    if (code !== NGHTTP2_NO_ERROR && !connectionLost) {
      // The upstream reset its stream mid-answer: the client's is reset the same way.
      down.close(code);
      this.#finish({
        status: this.status,
        grpcStatus: this.#o.grpc ? grpcStatusOfReset(code) : undefined,
        failed: true,
        reason: 'reset',
        error: undefined,
      });
      return;
    }
    // Gone before its end (its connection closed, which Node reports as a CANCEL): the answer is cut.
    const how = connectionLost ? 'the connection closed' : 'the stream closed';
    this.#cut(
      new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${this.#o.label}: ${how} mid-response`),
      GrpcStatus.UNAVAILABLE,
    );
  }

  /** The client's stream closed first: it went away (or reset it) before the answer was over. */
  #downClosed(): void {
    if (this.#finished) return;
    const grpc = this.#o.grpc;
    this.#finish({
      status: this.status,
      grpcStatus: grpc ? GrpcStatus.CANCELLED : undefined,
      failed: grpc,
      reason: 'cancelled',
      error: undefined,
    });
  }

  /** Ends the answer here: a gRPC client gets trailers with `grpcStatus`, any other a reset. */
  #cut(err: ProxyError, grpcStatus: number): void {
    const down = this.#down;
    this.#up.unpipe(down);
    if (this.#o.grpc) {
      // 'wantTrailers' follows once what was already written is out (the pipe may have ended it already).
      this.#override = { grpcStatus, error: err };
      if (!down.writableEnded) down.end();
      return;
    }
    down.close(NGHTTP2_INTERNAL_ERROR);
    this.#finish({
      status: this.status,
      grpcStatus: this.#o.grpc ? grpcStatusOfReset(NGHTTP2_INTERNAL_ERROR) : undefined,
      failed: true,
      reason: errorLabel(err),
      error: err,
    });
  }

  /**
   * RFC 9113 section 8.1: a server may answer in full before it has read the whole request, then reset
   * with NO_ERROR to stop the upload. When the upstream did that, the client is told the same way, but
   * only after our copy of the answer is out; otherwise its upload stalls forever.
   */
  #stopUploadIfDone(): void {
    const down = this.#down;
    if (!this.#sent || !this.#upClean || down.closed || down.destroyed || down.readableEnded) return;
    if (down.state.remoteClose !== 0) return;
    // What the client still sends is discarded (RFC 9113 section 8.1); left unread it would stall the
    // client's session, and with it the proxy's reading of that connection.
    down.unpipe();
    down.resume();
    resetAfterEnd(down, NGHTTP2_NO_ERROR);
  }

  #finish(end: AnswerEnd): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#o.done(end);
  }
}
