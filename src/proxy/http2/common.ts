// The HTTP/2 engine's pieces above the wire that are not one request's: how an upstream failure becomes
// the proxy's typed error, the fields of an error answer, how a client connection is taken over, and the
// interface the listener holds.
import type { Socket } from 'node:net';
import type { SpiffeId } from '../../api/identity.js';
import type { SocketAddr } from '../../core/addr.js';
import type { Router } from '../route/router.js';
import { grpcMessage } from '../../api/grpc/protocol.js';
import { Codes, ProxyError } from '../errors/errors.js';
import type { ErrorResponse } from '../errors/respond.js';
import type { Direction } from '../metrics.js';
import { meshUpstreamError } from '../transport/mtls.js';
import { InboundGate, type InboundPolicyDeps } from '../inbound/admit.js';

/** Maps an error seen on an upstream stream or connection to the proxy's typed error. */
export function classify(err: unknown, target: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as NodeJS.ErrnoException;
  // A mesh TLS session that failed its handshake: the proxy's error for it, already counted.
  const tlsErr = meshUpstreamError(e);
  if (tlsErr !== undefined) return tlsErr;
  if (e?.code && /^E(CONNREFUSED|CONNRESET|HOSTUNREACH|NETUNREACH|PIPE|ADDRNOTAVAIL)$/.test(e.code)) {
    return new ProxyError(Codes.CONNECT_REFUSED, `upstream ${target}: connect failed: ${e.code}`);
  }
  return new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${target}: http/2 error: ${e?.code ?? String(err)}`);
}

/** The head (and body) of the proxy's own error answer to one stream. */
export interface ErrorAnswer {
  readonly status: number;
  readonly grpcStatus: number | undefined;
  /** Response fields after :status, as name/value pairs. */
  readonly fields: readonly string[];
  /** The body; undefined for gRPC, whose answer is "trailers-only" (the head ends the stream). */
  readonly body: string | undefined;
}

/** For gRPC a trailers-only answer (gRPC clients read errors from grpc-status, not :status), else the
 *  status with a short text body and the message in outrigger-proxy-error. */
export function errorAnswer(r: ErrorResponse, grpc: boolean): ErrorAnswer {
  if (grpc) {
    return {
      status: 200,
      grpcStatus: r.grpcStatus,
      fields: [
        'content-type',
        'application/grpc',
        'grpc-status',
        String(r.grpcStatus),
        'grpc-message',
        grpcMessage(`outrigger proxy: ${r.message}`),
      ],
      body: undefined,
    };
  }
  const fields = [
    'content-type',
    'text/plain; charset=utf-8',
    'outrigger-proxy-error',
    r.message.replace(/[^\x20-\x7e]/g, '?'),
  ];
  if (r.retryAfterS !== undefined) fields.push('retry-after', String(r.retryAfterS));
  return { status: r.status, grpcStatus: undefined, fields, body: `outrigger proxy: ${r.message}\n` };
}

/**
 * Readies a client connection either engine takes over: its first bytes put back, half-close turned
 * off, and (inbound with a policy) the connection's one gate, since its identity and address are the
 * connection's. HTTP/2 has no half-close: a client's FIN means it is gone. The listener accepts
 * half-open sockets (for opaque TCP), and such a socket would stay open after 'end' with its streams
 * and their upstream streams; closed here, the connection's close cancels them.
 */
export function takeClientSocket(
  socket: Socket,
  initial: Buffer,
  direction: Direction,
  policy: InboundPolicyDeps | undefined,
  target: SocketAddr,
  clientId: SpiffeId | undefined,
  peerAddr: string | undefined,
): InboundGate | undefined {
  if (initial.length) socket.unshift(initial);
  socket.allowHalfOpen = false;
  if (direction !== 'inbound' || policy === undefined) return undefined;
  return new InboundGate(policy, target.port, clientId, peerAddr ?? socket.remoteAddress);
}

/** What a listener hands a detected HTTP/2 connection to, whichever engine serves it. */
export interface H2Engine {
  handle(
    socket: Socket,
    target: SocketAddr,
    initial: Buffer,
    router?: Router,
    clientId?: SpiffeId,
    peerAddr?: string,
  ): void;
  drain(): void;
  close(): void;
  readonly openSessions: number;
}
