// Protocol detection: looks at a connection's first bytes, without consuming them, and says whether it
// carries HTTP/2 (prior knowledge), HTTP/1.x, TLS or something else (opaque TCP).
import type { Socket } from 'node:net';

export type Protocol = 'h2' | 'http1' | 'tls' | 'opaque';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Methods that decide HTTP/1 at once, before the request line is complete (RFC 9110 section 9, RFC 5789). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** tchar from RFC 9110 section 5.6.2, as a lookup table. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

const SP = 0x20;
const LF = 0x0a;

/**
 * Classifies the bytes seen so far; undefined means "not sure yet, read more". `final` says no more
 * bytes will come (limit reached, or the peer stopped sending), so an unsure answer becomes opaque.
 */
export function classify(buf: Buffer, final = false): Protocol | undefined {
  const n = buf.length;
  if (n === 0) return final ? 'opaque' : undefined;
  // TLS record header: handshake (22), version 3.x (RFC 8446 section 5.1).
  if (buf[0] === 0x16) {
    if (n < 3) return final ? 'opaque' : undefined;
    return buf[1] === 0x03 && (buf[2] as number) <= 0x04 ? 'tls' : 'opaque';
  }
  // HTTP/2 connection preface (RFC 9113 section 3.4).
  const pre = Math.min(n, H2_PREFACE.length);
  if (buf.compare(H2_PREFACE, 0, pre, 0, pre) === 0) {
    if (n >= H2_PREFACE.length) return 'h2';
    return final ? 'opaque' : undefined;
  }
  // HTTP/1.x: a method token, then a space.
  let i = 0;
  while (i < n && i < 32 && TCHAR[buf[i] as number] === 1) i++;
  if (i === n) return final || i >= 32 ? 'opaque' : undefined;
  if (i === 0 || buf[i] !== SP) return 'opaque';
  if (KNOWN_METHODS.has(buf.toString('latin1', 0, i))) return 'http1';
  // An extension method: decide on the whole request line ending in " HTTP/1.x".
  const eol = buf.indexOf(LF, i);
  if (eol === -1) return final ? 'opaque' : undefined;
  const line = buf.toString('latin1', 0, eol).replace(/\r$/, '');
  return / HTTP\/1\.[01]$/.test(line) ? 'http1' : 'opaque';
}

export interface DetectOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

export interface DetectResult {
  readonly protocol: Protocol;
  /** True when the client sent nothing conclusive before the timeout. */
  readonly timedOut: boolean;
  /** The bytes read while detecting; the caller owns them (they were not put back on the socket). */
  readonly initial: Buffer;
  /** True when the client half-closed (sent FIN) during detection; its 'end' event has been consumed. */
  readonly ended: boolean;
}

/**
 * Reads from the socket until the protocol is known, the byte limit is reached, the peer stops sending,
 * or the timeout fires (then opaque). The socket is left paused; `initial` holds what was read.
 * Calls back exactly once, or never if the socket fails first (it is then destroyed).
 */
export function detect(socket: Socket, opts: DetectOptions, done: (r: DetectResult) => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let finished = false;
  let ended = false;
  const finish = (protocol: Protocol, timedOut: boolean) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.pause();
    done({ protocol, timedOut, initial: buf, ended });
  };
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const atLimit = buf.length >= opts.maxBytes;
    const p = classify(buf, atLimit);
    if (p !== undefined) finish(p, false);
  };
  // The peer half-closed: what it sent is all there is.
  const onEnd = () => {
    ended = true;
    finish(classify(buf, true) ?? 'opaque', false);
  };
  const onError = () => {
    finished = true;
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(() => finish('opaque', true), opts.timeoutMs);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('error', onError);
}
