// ALPN protocol ids of mesh TLS: they say what a proxy-to-proxy connection carries inside, and they are
// how the inbound proxy recognises a ClientHello as ours (see ./clienthello.ts).
//
// Why ALPN and not SNI to recognise mesh TLS: the client has to send ALPN anyway to say what is inside,
// an app's own TLS never offers an `outrigger/` id (apps offer h2, http/1.1, ...), and SNI must be a
// DNS host name (RFC 6066 section 3), which a spiffe:// identity is not. Mesh clients send no SNI.

export const MESH_ALPN = {
  /** HTTP/1.1 requests, one after another on the connection. */
  http1: 'outrigger/http1',
  /** HTTP/2 (prior knowledge) between the proxies, gRPC included. */
  h2: 'outrigger/h2',
  /** Opaque TCP bytes (including an app's own TLS, which rides inside untouched). */
  opaque: 'outrigger/opaque',
} as const;

export type MeshAlpn = (typeof MESH_ALPN)[keyof typeof MESH_ALPN];

/** What every mesh ALPN id starts with; a ClientHello offering one is ours. */
export const MESH_ALPN_PREFIX = 'outrigger/';

/** The list the inbound side accepts, in order of preference. */
export const MESH_ALPN_LIST: readonly MeshAlpn[] = [MESH_ALPN.h2, MESH_ALPN.http1, MESH_ALPN.opaque];

export function isMeshAlpn(p: string | false | null | undefined): p is MeshAlpn {
  return p === MESH_ALPN.http1 || p === MESH_ALPN.h2 || p === MESH_ALPN.opaque;
}
