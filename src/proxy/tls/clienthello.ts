// Tells a mesh ClientHello from an app's own TLS by the first bytes of a connection, without consuming
// them: ours offers an `outrigger/` ALPN id (./alpn.ts says why ALPN). The inbound proxy terminates
// mesh TLS and passes any other TLS through to the app untouched.

/** Largest ClientHello we read (bytes of handshake message); a large post-quantum one is under 2 KiB. */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXT_ALPN = 16;
const MESH_PREFIX = Buffer.from('outrigger/', 'latin1');

export type HelloKind = 'mesh' | 'other';

/**
 * Classifies the bytes read so far: 'mesh' when they hold a ClientHello offering an `outrigger/` ALPN
 * id, 'other' when they are not TLS or a ClientHello without one, undefined when more bytes are needed.
 * The ClientHello may span several TLS records (RFC 8446 section 5.1) and several reads.
 */
export function classifyClientHello(buf: Buffer): HelloKind | undefined {
  // Reassemble the handshake message from consecutive handshake records.
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let need = -1;
  while (off + 5 <= buf.length) {
    if (buf[off] !== CONTENT_HANDSHAKE || buf[off + 1] !== 0x03) return 'other';
    const recLen = buf.readUInt16BE(off + 3);
    if (recLen === 0 || recLen > 16384 + 256) return 'other';
    const end = Math.min(off + 5 + recLen, buf.length);
    parts.push(buf.subarray(off + 5, end));
    have += end - off - 5;
    if (need === -1 && have >= 4) {
      const first = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
      if (first[0] !== HANDSHAKE_CLIENT_HELLO) return 'other';
      need = 4 + first.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO_BYTES) return 'other';
    }
    if (need !== -1 && have >= need) return parseClientHello(Buffer.concat(parts).subarray(4, need));
    if (end < off + 5 + recLen) return undefined; // the record is not complete yet
    off = end;
  }
  if (off < buf.length && buf[off] !== CONTENT_HANDSHAKE) return 'other';
  return undefined;
}

/** Looks for the ALPN extension in a ClientHello body (RFC 8446 section 4.1.2, RFC 7301 section 3.1). */
function parseClientHello(b: Buffer): HelloKind {
  let p = 2 + 32; // legacy_version, random
  if (p + 1 > b.length) return 'other';
  p += 1 + (b[p] as number); // legacy_session_id
  if (p + 2 > b.length) return 'other';
  p += 2 + b.readUInt16BE(p); // cipher_suites
  if (p + 1 > b.length) return 'other';
  p += 1 + (b[p] as number); // legacy_compression_methods
  if (p + 2 > b.length) return 'other';
  const extEnd = Math.min(b.length, p + 2 + b.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    const body = p + 4;
    if (body + len > extEnd) return 'other';
    if (type === EXT_ALPN) {
      if (len < 2) return 'other';
      const listEnd = Math.min(body + 2 + b.readUInt16BE(body), body + len);
      let q = body + 2;
      while (q < listEnd) {
        const n = b[q] as number;
        const id = b.subarray(q + 1, Math.min(q + 1 + n, listEnd));
        if (id.length > MESH_PREFIX.length && id.subarray(0, MESH_PREFIX.length).equals(MESH_PREFIX)) return 'mesh';
        q += 1 + n;
      }
      return 'other';
    }
    p = body + len;
  }
  return 'other';
}
