// Typed errors of the data plane. Inner code throws (or passes) these; the rescue point of each
// listener turns them into a response with ./respond.ts, never anything else.
import { OutriggerError } from '../../core/errors.js';

export const Codes = {
  /** The client's bytes are not valid HTTP. */
  MALFORMED_REQUEST: 'OUTR_ERR_MALFORMED_REQUEST',
  /** The request head is larger than max-header-bytes. */
  HEADERS_TOO_LARGE: 'OUTR_ERR_HEADERS_TOO_LARGE',
  /** The client took longer than header-timeout-ms to send its request head. */
  HEADER_TIMEOUT: 'OUTR_ERR_HEADER_TIMEOUT',
  /** The request uses an HTTP version we do not speak on this connection. */
  VERSION_NOT_SUPPORTED: 'OUTR_ERR_VERSION_NOT_SUPPORTED',
  /** The upstream refused or reset the connection before answering. */
  CONNECT_REFUSED: 'OUTR_ERR_CONNECT_REFUSED',
  CONNECT_TIMEOUT: 'OUTR_ERR_CONNECT_TIMEOUT',
  RESPONSE_TIMEOUT: 'OUTR_ERR_RESPONSE_TIMEOUT',
  /** Mesh TLS to the endpoint failed: its proxy's chain does not verify to our trust anchor, is
   *  expired, refused our certificate, did not agree to the ALPN, or the handshake broke off. */
  UPSTREAM_TLS: 'OUTR_ERR_UPSTREAM_TLS',
  /** Mesh TLS to the endpoint verified, but its proxy is not the identity discovery named. */
  UPSTREAM_IDENTITY: 'OUTR_ERR_UPSTREAM_IDENTITY',
  /** The endpoint is meshed but this proxy holds no certificate yet, so it cannot speak mTLS to it. */
  NO_IDENTITY: 'OUTR_ERR_NO_IDENTITY',
  /** The upstream answered with bytes that are not a valid HTTP response, or closed mid-response. */
  UPSTREAM_PROTOCOL: 'OUTR_ERR_UPSTREAM_PROTOCOL',
  /** The upstream ended a gRPC response (HTTP 200) without grpc-status: the proxy ends it with INTERNAL. */
  GRPC_STATUS_MISSING: 'OUTR_ERR_GRPC_STATUS_MISSING',
  /** The destination is a known Service with no ready endpoint to send the request to. */
  NO_ENDPOINTS: 'OUTR_ERR_NO_ENDPOINTS',
  /** The destination has as many requests in flight as it may, and as many waiting as may wait. */
  QUEUE_FULL: 'OUTR_ERR_QUEUE_FULL',
  /** Every endpoint of the destination is ejected by its circuit breaker: fail fast. */
  ENDPOINTS_EJECTED: 'OUTR_ERR_ENDPOINTS_EJECTED',
  /** The destination has routes and none matches the request (Gateway API: 404, gRPC UNIMPLEMENTED). */
  NO_ROUTE: 'OUTR_ERR_NO_ROUTE',
  /** The matched rule has no backend to send to (none, every weight 0, or a Service that does not
   *  exist): Gateway API says 500. */
  ROUTE_NO_BACKEND: 'OUTR_ERR_ROUTE_NO_BACKEND',
  /** The matched rule's timeouts.request expired (the whole request, retries included): 504. */
  ROUTE_TIMEOUT: 'OUTR_ERR_ROUTE_TIMEOUT',
  /** Inbound: the pod's policy does not authorize this client for this server or route: 403. */
  UNAUTHORIZED: 'OUTR_ERR_UNAUTHORIZED',
  /** Inbound: the server's local rate limit refused the request: 429 with Retry-After. */
  RATE_LIMITED: 'OUTR_ERR_RATE_LIMITED',
  /** A fault in the proxy's own forwarding code, caught for one request (or HTTP/2 stream), which it
   *  ends: 500 (gRPC INTERNAL) when nothing was answered yet, else the answer is cut. A bug: report it. */
  PROXY_FAULT: 'OUTR_ERR_PROXY_FAULT',
} as const;

export type Code = (typeof Codes)[keyof typeof Codes];

export class ProxyError extends OutriggerError {
  declare readonly code: Code;
  /** RATE_LIMITED: when the client may try again (whole seconds, for Retry-After). */
  readonly retryAfterS: number | undefined;
  constructor(code: Code, message: string, options?: { cause?: unknown; retryAfterS?: number }) {
    super(code, message, options);
    this.name = 'ProxyError';
    this.retryAfterS = options?.retryAfterS;
  }
}

/** Maps a socket error from connecting to an upstream into the proxy's error. */
export function upstreamConnectError(target: string, err: NodeJS.ErrnoException): ProxyError {
  const code = err.code ?? 'EUNKNOWN';
  return new ProxyError(Codes.CONNECT_REFUSED, `upstream ${target}: connect failed: ${code}`, { cause: err });
}
