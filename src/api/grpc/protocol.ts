// gRPC's rules over HTTP/2, shared by the proxy (which speaks for a server, or must know what a client
// was told) and the API's own client: the status codes, reading grpc-status, encoding and decoding
// grpc-message, and the status a client derives when it gets an HTTP status or a reset instead of one
// (grpc's "PROTOCOL-HTTP2" and "http-grpc-status-mapping" documents).
import http2, { type IncomingHttpHeaders } from 'node:http2';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const NAMES: readonly string[] = Object.keys(GrpcStatus);

/** `UNAVAILABLE` for 14; the number itself for a code gRPC does not define. */
export function grpcStatusName(code: number): string {
  return NAMES[code] ?? String(code);
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY } =
  http2.constants;

/** A request is gRPC when its content type says so (application/grpc, +proto, +json...). */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

/** The grpc-status of a header block, when it has a well-formed one. */
export function grpcStatusOf(h: IncomingHttpHeaders | undefined): number | undefined {
  const v = h?.['grpc-status'];
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/**
 * grpc-message is percent-encoded, but only bytes outside printable ASCII and '%' itself; encoding
 * ':' and ' ' as encodeURIComponent does would show up as they are in clients.
 */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The text of a grpc-message header (percent-decoded; kept as it is when it does not decode). */
export function grpcMessageText(header: string): string {
  if (!header.includes('%')) return header;
  try {
    return decodeURIComponent(header);
  } catch {
    return header;
  }
}

/** The status a gRPC client derives from a response that ended without grpc-status (by its HTTP status). */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** The status a gRPC client derives from RST_STREAM with `code` (RFC 9113 error codes). */
export function grpcStatusOfReset(code: number): number {
  switch (code) {
    case NGHTTP2_REFUSED_STREAM:
      return GrpcStatus.UNAVAILABLE;
    case NGHTTP2_CANCEL:
      return GrpcStatus.CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
      return GrpcStatus.PERMISSION_DENIED;
    default:
      return GrpcStatus.INTERNAL;
  }
}
