// The key exchange groups every TLS of the mesh offers (mesh TLS between proxies, and the control
// plane's connections, both ends): the hybrid post-quantum X25519MLKEM768 first when this runtime's
// OpenSSL has it (3.5 and later: Node 24), then X25519 and P-256. Decided once, at start-up.
import tls from 'node:tls';

/** The hybrid of X25519 and ML-KEM-768 (draft-ietf-tls-ecdhe-mlkem), IANA TLS group 0x11EC. */
export const HYBRID_GROUP = 'X25519MLKEM768';

/** Whether OpenSSL here knows a group: setting it alone on a context throws when it does not. */
export function groupSupported(group: string): boolean {
  try {
    tls.createSecureContext({ ecdhCurve: group });
    return true;
  } catch {
    return false;
  }
}

/** The groups offered, most preferred first. */
export const MESH_GROUPS: readonly string[] = groupSupported(HYBRID_GROUP)
  ? [HYBRID_GROUP, 'X25519', 'P-256']
  : ['X25519', 'P-256'];

/**
 * The `ecdhCurve` string of every mesh TLS context. With the hybrid, the client sends key shares for
 * both it and X25519 ('*' marks a group to send a key share for, OpenSSL 3.5's syntax): a peer whose
 * OpenSSL lacks the hybrid (a Node 20 proxy in a mesh halfway through an upgrade) then takes X25519 at
 * once, instead of asking for it again with a HelloRetryRequest (RFC 8446 section 4.1.4), a round trip.
 * The cost is the hybrid key share in every ClientHello (1,216 bytes) and the ML-KEM work per handshake.
 */
export const MESH_ECDH_CURVE: string =
  MESH_GROUPS[0] === HYBRID_GROUP ? `*${HYBRID_GROUP}:*X25519:P-256` : MESH_GROUPS.join(':');

/** The group a client-side TLS socket agreed on ('TLSGroup' for the hybrid, 'ECDH' for the others);
 *  undefined when Node cannot tell (a server-side socket: OpenSSL's API for it is not exposed). */
export function negotiatedGroup(socket: tls.TLSSocket): string | undefined {
  const info = socket.getEphemeralKeyInfo() as { name?: string } | null;
  return info !== null && typeof info.name === 'string' && info.name !== '' ? info.name : undefined;
}
