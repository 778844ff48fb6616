// The one table that turns a data-plane error into what the client sees: an HTTP status, or a gRPC status
// (for gRPC requests, in grpc-status). Every HTTP rescue point uses it; connections refused before any
// protocol is known (loops, no original destination, draining) and opaque TCP failures are reset instead.
import { Codes, ProxyError, type Code } from './errors.js';

export interface ErrorResponse {
  readonly status: number;
  /** gRPC status code for gRPC requests (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
  readonly grpcStatus: number;
  readonly message: string;
  /** Seconds for a Retry-After header (429). */
  readonly retryAfterS?: number;
}

const TABLE: Record<Code, { status: number; grpc: number }> = {
  [Codes.MALFORMED_REQUEST]: { status: 400, grpc: 13 /* INTERNAL */ },
  [Codes.HEADERS_TOO_LARGE]: { status: 431, grpc: 8 /* RESOURCE_EXHAUSTED */ },
  [Codes.HEADER_TIMEOUT]: { status: 408, grpc: 4 /* DEADLINE_EXCEEDED */ },
  [Codes.VERSION_NOT_SUPPORTED]: { status: 505, grpc: 12 /* UNIMPLEMENTED */ },
  [Codes.CONNECT_REFUSED]: { status: 502, grpc: 14 /* UNAVAILABLE */ },
  [Codes.CONNECT_TIMEOUT]: { status: 504, grpc: 4 /* DEADLINE_EXCEEDED */ },
  [Codes.RESPONSE_TIMEOUT]: { status: 504, grpc: 4 },
  [Codes.UPSTREAM_PROTOCOL]: { status: 502, grpc: 14 },
  [Codes.GRPC_STATUS_MISSING]: { status: 502, grpc: 13 /* INTERNAL */ },
  [Codes.UPSTREAM_TLS]: { status: 502, grpc: 14 /* UNAVAILABLE */ },
  [Codes.UPSTREAM_IDENTITY]: { status: 502, grpc: 14 },
  [Codes.NO_IDENTITY]: { status: 503, grpc: 14 },
  [Codes.NO_ENDPOINTS]: { status: 503, grpc: 14 /* UNAVAILABLE */ },
  [Codes.ENDPOINTS_EJECTED]: { status: 503, grpc: 14 },
  [Codes.QUEUE_FULL]: { status: 503, grpc: 14 },
  [Codes.NO_ROUTE]: { status: 404, grpc: 12 /* UNIMPLEMENTED */ },
  [Codes.ROUTE_NO_BACKEND]: { status: 500, grpc: 13 /* INTERNAL */ },
  [Codes.ROUTE_TIMEOUT]: { status: 504, grpc: 4 /* DEADLINE_EXCEEDED */ },
  [Codes.UNAUTHORIZED]: { status: 403, grpc: 7 /* PERMISSION_DENIED */ },
  [Codes.RATE_LIMITED]: { status: 429, grpc: 8 /* RESOURCE_EXHAUSTED */ },
  [Codes.PROXY_FAULT]: { status: 500, grpc: 13 /* INTERNAL */ },
};

/** What to answer for an error; anything that is not a ProxyError is a 502 (a bug or an upstream fault). */
export function errorResponse(err: unknown): ErrorResponse {
  if (err instanceof ProxyError) {
    const row = TABLE[err.code];
    return {
      status: row.status,
      grpcStatus: row.grpc,
      message: err.message,
      ...(err.retryAfterS !== undefined ? { retryAfterS: err.retryAfterS } : {}),
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 502, grpcStatus: 14, message: `proxy error: ${message}` };
}

const REASONS: Record<number, string> = {
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}

/** A complete HTTP/1.1 error response with a short body naming the proxy; always closes or keeps per `close`. */
export function http1ErrorResponse(r: ErrorResponse, close: boolean): string {
  const body = `outrigger proxy: ${r.message}\n`;
  return (
    `HTTP/1.1 ${r.status} ${reasonPhrase(r.status)}\r\n` +
    `content-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    `outrigger-proxy-error: ${r.message.replace(/[^\x20-\x7e]/g, '?')}\r\n` +
    (r.retryAfterS !== undefined ? `retry-after: ${r.retryAfterS}\r\n` : '') +
    (close ? 'connection: close\r\n' : '') +
    `\r\n${body}`
  );
}
