// HTTP/2 framing (RFC 9113 sections 3.4, 4 and 6): a reader that cuts socket chunks into frames without
// copying payloads that lie within one chunk, the checks of each frame type's layout, and writers that
// build each frame in one Buffer (DATA payloads are never copied: only their 9-byte header is built).
import { connectionError, H2Codes, H2ErrorCode, streamError, type H2ErrorCodeValue } from './errors.js';

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  /** DATA, HEADERS. */
  END_STREAM: 0x1,
  /** SETTINGS, PING. */
  ACK: 0x1,
  /** HEADERS, PUSH_PROMISE, CONTINUATION. */
  END_HEADERS: 0x4,
  /** DATA, HEADERS, PUSH_PROMISE. */
  PADDED: 0x8,
  /** HEADERS. */
  PRIORITY: 0x20,
} as const;

export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  /** RFC 8441 (extended CONNECT). */
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

export const FRAME_HEADER_SIZE = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value and lower bound (RFC 9113 section 6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
/** SETTINGS_MAX_FRAME_SIZE's upper bound, 2^24-1. */
export const MAX_FRAME_SIZE_LIMIT = 0xffffff;
/** The largest flow-control window, 2^31-1 (RFC 9113 section 6.9.1). */
export const MAX_WINDOW = 0x7fffffff;
/** SETTINGS_INITIAL_WINDOW_SIZE's initial value, and the connection window's (RFC 9113 section 6.9.2). */
export const DEFAULT_WINDOW = 65535;
/** What a client sends first (RFC 9113 section 3.4). */
export const PREFACE: Buffer = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A frame as the payload checks need it; FrameReader is one. The payload is `data[offset, offset +
 *  length)`: checks of fixed-size frames read it by index, without making a Buffer view of it (a view
 *  costs an allocation of about the price of reading a frame). */
export interface FrameView {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
  readonly data: Buffer;
  readonly offset: number;
  /** The payload as a Buffer (a view, made on demand). */
  readonly payload: Buffer;
}

export interface FrameReaderOptions {
  /** The SETTINGS_MAX_FRAME_SIZE we advertise (default 16384): longer frames are a FRAME_SIZE_ERROR.
   *  (Raise `maxFrameSize` when sending a larger value; lower it only once the peer acknowledged.) */
  maxFrameSize?: number;
  /** Server side: the client's 24-byte preface comes first and is checked. */
  expectPreface?: boolean;
}

const EMPTY = Buffer.alloc(0);
const NO_BLOCK = -1;

/**
 * Cuts a byte stream into frames. Feed it with push(chunk), then call next() until it returns false;
 * after each true the frame's fields (type, flags, streamId, payload) describe one frame, until the
 * next call. A payload within one chunk is a subarray of it; a frame split across chunks is copied once
 * into a Buffer of its own. Unknown frame types are passed on, for the caller to ignore (section 5.5).
 * Besides lengths, the reader enforces the two rules of frame order: SETTINGS first (section 3.4) and
 * nothing but CONTINUATION on the same stream inside a field block (section 6.10). After it throws, the
 * connection is over: the reader is not meant to be used again.
 */
export class FrameReader implements FrameView {
  type = 0;
  flags = 0;
  streamId = 0;
  /** Payload length of the current frame. */
  length = 0;
  /** The buffer that holds the current payload (a socket chunk, or a copy for a frame across chunks)... */
  data: Buffer = EMPTY;
  /** ...and where in it the payload starts. */
  offset = 0;
  maxFrameSize: number;
  private view: Buffer | null = null;

  private chunk: Buffer = EMPTY;
  private pos = 0;
  private prefaceLeft: number;
  private readonly head = Buffer.alloc(FRAME_HEADER_SIZE);
  private headFill = 0;
  /** The payload being gathered across chunks, or null. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private sawSettings = false;
  /** Stream of the field block waiting for CONTINUATION frames, or NO_BLOCK. */
  private blockStream = NO_BLOCK;

  constructor(options: FrameReaderOptions = {}) {
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.prefaceLeft = options.expectPreface === true ? PREFACE.length : 0;
  }

  /** Adds bytes read from the socket. Call next() until it returns false before pushing again. */
  push(chunk: Buffer): void {
    if (this.pos < this.chunk.length) throw new Error('frame reader: push() before next() consumed the last chunk');
    this.chunk = chunk;
    this.pos = 0;
  }

  /** The current payload as a Buffer: a view of `data`, made on the first call for each frame. */
  get payload(): Buffer {
    if (this.view === null) {
      this.view = this.length === 0 ? EMPTY : this.data.subarray(this.offset, this.offset + this.length);
    }
    return this.view;
  }

  /** Whether a field block is open, waiting for CONTINUATION frames. */
  get inFieldBlock(): boolean {
    return this.blockStream !== NO_BLOCK;
  }

  /** Moves to the next complete frame; false when the bytes pushed so far hold no more. */
  next(): boolean {
    const chunk = this.chunk;
    const n = chunk.length;
    let pos = this.pos;
    if (this.prefaceLeft > 0) {
      let i = PREFACE.length - this.prefaceLeft;
      while (pos < n && i < PREFACE.length) {
        if (chunk[pos++] !== PREFACE[i++]) {
          const message = 'client did not send the http/2 preface';
          throw connectionError(H2Codes.BAD_PREFACE, H2ErrorCode.PROTOCOL_ERROR, message);
        }
      }
      this.prefaceLeft = PREFACE.length - i;
      this.pos = pos;
      if (this.prefaceLeft > 0) return false;
    }
    const body = this.body;
    if (body !== null) {
      const take = Math.min(body.length - this.bodyFill, n - pos);
      chunk.copy(body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      this.pos = pos + take;
      if (this.bodyFill < body.length) return false;
      this.body = null;
      this.data = body;
      this.offset = 0;
      this.view = body;
      return this.check();
    }
    let h: Buffer;
    let hp: number;
    if (this.headFill === 0 && n - pos >= FRAME_HEADER_SIZE) {
      h = chunk;
      hp = pos;
      pos += FRAME_HEADER_SIZE;
    } else {
      const take = Math.min(FRAME_HEADER_SIZE - this.headFill, n - pos);
      chunk.copy(this.head, this.headFill, pos, pos + take);
      this.headFill += take;
      pos += take;
      if (this.headFill < FRAME_HEADER_SIZE) {
        this.pos = pos;
        return false;
      }
      this.headFill = 0;
      h = this.head;
      hp = 0;
    }
    // Section 4.1: 24-bit length, type, flags, a reserved bit (ignored) and a 31-bit stream identifier.
    const length = ((h[hp] as number) << 16) | ((h[hp + 1] as number) << 8) | (h[hp + 2] as number);
    this.type = h[hp + 3] as number;
    this.flags = h[hp + 4] as number;
    this.streamId =
      (((h[hp + 5] as number) & 0x7f) << 24) |
      ((h[hp + 6] as number) << 16) |
      ((h[hp + 7] as number) << 8) |
      (h[hp + 8] as number);
    this.length = length;
    if (length > this.maxFrameSize) {
      // Section 4.2: we treat it as a connection error whatever the type; skipping a frame this large
      // would still cost reading it.
      throw connectionError(
        H2Codes.FRAME_SIZE,
        H2ErrorCode.FRAME_SIZE_ERROR,
        `frame of ${length} bytes exceeds the maximum frame size of ${this.maxFrameSize}`,
      );
    }
    if (n - pos >= length) {
      this.data = chunk;
      this.offset = pos;
      this.view = null;
      this.pos = pos + length;
      return this.check();
    }
    const gathered = Buffer.allocUnsafe(length);
    chunk.copy(gathered, 0, pos, n);
    this.body = gathered;
    this.bodyFill = n - pos;
    this.pos = n;
    return false;
  }

  /** The rules of frame order; returns true so that next() can end with it. */
  private check(): boolean {
    const type = this.type;
    if (!this.sawSettings) {
      // Section 3.4: each side's preface ends with (or is) a SETTINGS frame, which is not an ACK.
      if (type !== FrameType.SETTINGS || (this.flags & Flag.ACK) !== 0) {
        throw connectionError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, 'first frame is not settings');
      }
      this.sawSettings = true;
    }
    if (this.blockStream !== NO_BLOCK) {
      if (type !== FrameType.CONTINUATION || this.streamId !== this.blockStream) {
        throw connectionError(
          H2Codes.PROTOCOL,
          H2ErrorCode.PROTOCOL_ERROR,
          `expected continuation of stream ${this.blockStream}, got frame type ${type} on stream ${this.streamId}`,
        );
      }
      if ((this.flags & Flag.END_HEADERS) !== 0) this.blockStream = NO_BLOCK;
    } else if (type === FrameType.HEADERS || type === FrameType.PUSH_PROMISE) {
      if ((this.flags & Flag.END_HEADERS) === 0) this.blockStream = this.streamId;
    } else if (type === FrameType.CONTINUATION) {
      throw connectionError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, 'continuation without a field block');
    }
    return true;
  }
}

const protocol = (message: string) => connectionError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, message);
const frameSize = (message: string) => connectionError(H2Codes.FRAME_SIZE, H2ErrorCode.FRAME_SIZE_ERROR, message);

/** Where a padded frame's content starts and ends in f.data, without its Pad Length field and padding
 *  (sections 6.1, 6.2); returns the start, and the end in `contentEnd`. */
let contentEnd = 0;
function unpad(f: FrameView, what: string): number {
  const start = f.offset;
  const len = f.length;
  if ((f.flags & Flag.PADDED) === 0) {
    contentEnd = start + len;
    return start;
  }
  if (len < 1) throw frameSize(`padded ${what} frame without a pad length`);
  const pad = f.data[start] as number;
  // "If the length of the padding is the length of the frame payload or greater ... PROTOCOL_ERROR".
  if (pad >= len) throw protocol(`${what} padding of ${pad} bytes in a ${len}-byte payload`);
  contentEnd = start + len - pad;
  return start + 1;
}

/** DATA (section 6.1): the data without padding. Flow control counts the whole frame length instead. */
export function dataPayload(f: FrameView): Buffer {
  if (f.streamId === 0) throw protocol('data frame on stream 0');
  if ((f.flags & Flag.PADDED) === 0) return f.payload;
  const start = unpad(f, 'data');
  return f.data.subarray(start, contentEnd);
}

/** HEADERS (section 6.2): the field block fragment, without padding and priority fields (which RFC 9113
 *  section 5.3.2 deprecates; we never act on them). */
export function headersFragment(f: FrameView): Buffer {
  if (f.streamId === 0) throw protocol('headers frame on stream 0');
  if ((f.flags & (Flag.PADDED | Flag.PRIORITY)) === 0) return f.payload;
  let start = unpad(f, 'headers');
  if ((f.flags & Flag.PRIORITY) !== 0) {
    if (contentEnd - start < 5) throw frameSize('headers frame too short for its priority fields');
    start += 5;
  }
  return f.data.subarray(start, contentEnd);
}

/** CONTINUATION (section 6.10): the field block fragment; the reader checked where it may appear. */
export function continuationFragment(f: FrameView): Buffer {
  if (f.streamId === 0) throw protocol('continuation frame on stream 0');
  return f.payload;
}

/** PRIORITY (section 6.3): checked, then ignored. */
export function checkPriority(f: FrameView): void {
  if (f.streamId === 0) throw protocol('priority frame on stream 0');
  if (f.length !== 5) {
    throw streamError(H2Codes.FRAME_SIZE, H2ErrorCode.FRAME_SIZE_ERROR, f.streamId, 'priority frame not 5 bytes');
  }
  const dependency = f.data.readUInt32BE(f.offset) & 0x7fffffff;
  // Section 5.3.1: a stream cannot depend on itself.
  if (dependency === f.streamId) {
    throw streamError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, f.streamId, 'stream depends on itself');
  }
}

/** RST_STREAM (section 6.4): the error code. */
export function rstStreamCode(f: FrameView): number {
  if (f.streamId === 0) throw protocol('rst_stream frame on stream 0');
  if (f.length !== 4) throw frameSize('rst_stream frame not 4 bytes');
  return f.data.readUInt32BE(f.offset);
}

/** The peer's settings (section 6.5.2), at their initial values until its SETTINGS frames change them. */
export class Settings {
  headerTableSize = 4096;
  enablePush = 1;
  /** No limit until the peer sets one. */
  maxConcurrentStreams = Infinity;
  initialWindowSize = DEFAULT_WINDOW;
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /** Advisory (section 10.5.1); no limit until the peer sets one. */
  maxHeaderListSize = Infinity;
  enableConnectProtocol = 0;
  /** The smallest HEADER_TABLE_SIZE in the last frame: our HPACK encoder must signal it (RFC 7541 4.2). */
  lowestHeaderTableSize = 4096;
}

/**
 * SETTINGS (section 6.5): applies the frame's values to `into`, in order, and returns whether the frame
 * is an ACK. Unknown identifiers are ignored (section 6.5.2). `fromServer`: the peer is a server, which
 * must not enable push.
 */
export function parseSettings(f: FrameView, into: Settings, fromServer: boolean): boolean {
  if (f.streamId !== 0) throw protocol(`settings frame on stream ${f.streamId}`);
  if ((f.flags & Flag.ACK) !== 0) {
    if (f.length !== 0) throw frameSize('settings ack with a payload');
    return true;
  }
  if (f.length % 6 !== 0) throw frameSize(`settings payload of ${f.length} bytes is not a multiple of 6`);
  const p = f.data;
  let lowest = into.headerTableSize;
  for (let i = f.offset; i < f.offset + f.length; i += 6) {
    const id = p.readUInt16BE(i);
    const value = p.readUInt32BE(i + 2);
    switch (id) {
      case SettingId.HEADER_TABLE_SIZE:
        into.headerTableSize = value;
        if (value < lowest) lowest = value;
        break;
      case SettingId.ENABLE_PUSH:
        if (value > 1 || (fromServer && value === 1)) {
          throw settingsValue('enable_push', value, H2ErrorCode.PROTOCOL_ERROR);
        }
        into.enablePush = value;
        break;
      case SettingId.MAX_CONCURRENT_STREAMS:
        into.maxConcurrentStreams = value;
        break;
      case SettingId.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW) throw settingsValue('initial_window_size', value, H2ErrorCode.FLOW_CONTROL_ERROR);
        into.initialWindowSize = value;
        break;
      case SettingId.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
          throw settingsValue('max_frame_size', value, H2ErrorCode.PROTOCOL_ERROR);
        }
        into.maxFrameSize = value;
        break;
      case SettingId.MAX_HEADER_LIST_SIZE:
        into.maxHeaderListSize = value;
        break;
      case SettingId.ENABLE_CONNECT_PROTOCOL:
        if (value > 1) throw settingsValue('enable_connect_protocol', value, H2ErrorCode.PROTOCOL_ERROR);
        into.enableConnectProtocol = value;
        break;
      default:
        break;
    }
  }
  into.lowestHeaderTableSize = lowest;
  return false;
}

function settingsValue(name: string, value: number, code: H2ErrorCodeValue) {
  return connectionError(H2Codes.SETTINGS_VALUE, code, `settings_${name} of ${value} is out of range`);
}

/** PUSH_PROMISE (section 6.6): we never enable push (and a server never receives one), so it is always a
 *  connection error (sections 6.5.2 and 8.4). */
export function refusePushPromise(f: FrameView): never {
  throw connectionError(H2Codes.PUSH_REFUSED, H2ErrorCode.PROTOCOL_ERROR, `push_promise on stream ${f.streamId}`);
}

/** PING (section 6.7): the 8 opaque bytes, to echo in the ACK. */
export function pingData(f: FrameView): Buffer {
  if (f.streamId !== 0) throw protocol(`ping frame on stream ${f.streamId}`);
  if (f.length !== 8) throw frameSize('ping frame not 8 bytes');
  return f.payload;
}

export interface GoAway {
  readonly lastStreamId: number;
  readonly errorCode: number;
  readonly debugData: Buffer;
}

/** GOAWAY (section 6.8). */
export function parseGoAway(f: FrameView): GoAway {
  if (f.streamId !== 0) throw protocol(`goaway frame on stream ${f.streamId}`);
  if (f.length < 8) throw frameSize('goaway frame shorter than 8 bytes');
  const p = f.payload;
  return { lastStreamId: p.readUInt32BE(0) & 0x7fffffff, errorCode: p.readUInt32BE(4), debugData: p.subarray(8) };
}

/** WINDOW_UPDATE (section 6.9): the increment. A 0 increment ends the stream, or the connection when it
 *  is on stream 0. */
export function windowIncrement(f: FrameView): number {
  if (f.length !== 4) throw frameSize('window_update frame not 4 bytes');
  const inc = f.data.readUInt32BE(f.offset) & 0x7fffffff;
  if (inc === 0) {
    if (f.streamId === 0) throw protocol('window_update of 0 on the connection');
    throw streamError(H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, f.streamId, 'window_update of 0');
  }
  return inc;
}

/** The frame types of RFC 9113; others are extensions, to be ignored (section 5.5). */
export function isKnownFrameType(type: number): boolean {
  return type <= FrameType.CONTINUATION;
}

/** Most CONTINUATION frames we take in one field block: a bound on work, whatever their size. */
const MAX_CONTINUATIONS = 64;

/**
 * Joins a field block's fragments (HEADERS then CONTINUATION, section 4.3) up to `maxBytes`. A block
 * in one frame is returned as is. Refusing a block means the HPACK state is lost, so a block too large
 * is a connection error (ENHANCE_YOUR_CALM, as a peer sending it is abusive).
 */
export class FieldBlockAssembler {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** The first fragment; returns the whole block when `endHeaders`, else null. */
  start(fragment: Buffer, endHeaders: boolean): Buffer | null {
    this.parts.length = 0;
    this.bytes = 0;
    return this.add(fragment, endHeaders);
  }

  /** A CONTINUATION fragment; returns the whole block when `endHeaders`, else null. */
  add(fragment: Buffer, endHeaders: boolean): Buffer | null {
    this.bytes += fragment.length;
    if (this.bytes > this.maxBytes || this.parts.length > MAX_CONTINUATIONS) {
      this.parts.length = 0;
      throw connectionError(
        H2Codes.FIELD_BLOCK_TOO_LARGE,
        H2ErrorCode.ENHANCE_YOUR_CALM,
        `field block larger than ${this.maxBytes} bytes or ${MAX_CONTINUATIONS} continuation frames`,
      );
    }
    if (endHeaders && this.parts.length === 0) return fragment;
    this.parts.push(fragment);
    if (!endHeaders) return null;
    const block = Buffer.concat(this.parts, this.bytes);
    this.parts.length = 0;
    return block;
  }
}

/** Writes a frame header at `out[pos]`. */
export function writeFrameHeader(
  out: Buffer,
  pos: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  out[pos] = length >>> 16;
  out[pos + 1] = length >>> 8;
  out[pos + 2] = length;
  out[pos + 3] = type;
  out[pos + 4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, pos + 5);
}

/** Any frame, payload copied: for control frames and tests. */
export function frame(type: number, flags: number, streamId: number, payload: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/** The header of a DATA frame of `length` bytes: the payload is written after it as it is. */
export function dataFrameHeader(streamId: number, length: number, endStream: boolean): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  writeFrameHeader(out, 0, length, FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId);
  return out;
}

/**
 * HEADERS for a field block that starts after FRAME_HEADER_SIZE bytes of headroom in `block` (as
 * HpackEncoder.encode(list, FRAME_HEADER_SIZE) makes it). A block that fits one frame is framed in
 * place, with no copy; a larger one is split into HEADERS and CONTINUATION frames in one new Buffer.
 */
export function headersFrames(block: Buffer, streamId: number, endStream: boolean, maxFrameSize: number): Buffer {
  const size = block.length - FRAME_HEADER_SIZE;
  const es = endStream ? Flag.END_STREAM : 0;
  if (size <= maxFrameSize) {
    writeFrameHeader(block, 0, size, FrameType.HEADERS, es | Flag.END_HEADERS, streamId);
    return block;
  }
  const count = Math.ceil(size / maxFrameSize);
  const out = Buffer.allocUnsafe(size + count * FRAME_HEADER_SIZE);
  let src = FRAME_HEADER_SIZE;
  let o = 0;
  for (let i = 0; i < count; i++) {
    const len = Math.min(maxFrameSize, block.length - src);
    const last = i === count - 1 ? Flag.END_HEADERS : 0;
    const type = i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    writeFrameHeader(out, o, len, type, (i === 0 ? es : 0) | last, streamId);
    block.copy(out, o + FRAME_HEADER_SIZE, src, src + len);
    o += FRAME_HEADER_SIZE + len;
    src += len;
  }
  return out;
}

/** SETTINGS with `values` as [identifier, value] pairs. */
export function settingsFrame(values: ReadonlyArray<readonly [number, number]>): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + values.length * 6);
  writeFrameHeader(out, 0, values.length * 6, FrameType.SETTINGS, 0, 0);
  let o = FRAME_HEADER_SIZE;
  for (const [id, value] of values) {
    out.writeUInt16BE(id, o);
    out.writeUInt32BE(value, o + 2);
    o += 6;
  }
  return out;
}

export function settingsAckFrame(): Buffer {
  return frame(FrameType.SETTINGS, Flag.ACK, 0);
}

/** PING with 8 bytes of opaque data; an ACK echoes the data of the PING it answers. */
export function pingFrame(data: Uint8Array, ack: boolean): Buffer {
  if (data.length !== 8) throw new RangeError('ping data must be 8 bytes');
  return frame(FrameType.PING, ack ? Flag.ACK : 0, 0, data);
}

export function rstStreamFrame(streamId: number, errorCode: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 4);
  writeFrameHeader(out, 0, 4, FrameType.RST_STREAM, 0, streamId);
  out.writeUInt32BE(errorCode, FRAME_HEADER_SIZE);
  return out;
}

export function goAwayFrame(lastStreamId: number, errorCode: number, debugData: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 8 + debugData.length);
  writeFrameHeader(out, 0, 8 + debugData.length, FrameType.GOAWAY, 0, 0);
  out.writeUInt32BE(lastStreamId & 0x7fffffff, FRAME_HEADER_SIZE);
  out.writeUInt32BE(errorCode, FRAME_HEADER_SIZE + 4);
  out.set(debugData, FRAME_HEADER_SIZE + 8);
  return out;
}

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 4);
  writeFrameHeader(out, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  out.writeUInt32BE(increment & 0x7fffffff, FRAME_HEADER_SIZE);
  return out;
}

/** PRIORITY: we never send one on our own; for tools and tests. `weight` is 1..256 as in section 5.3.2. */
export function priorityFrame(streamId: number, dependency: number, exclusive: boolean, weight: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 5);
  writeFrameHeader(out, 0, 5, FrameType.PRIORITY, 0, streamId);
  out.writeUInt32BE(((exclusive ? 0x80000000 : 0) | (dependency & 0x7fffffff)) >>> 0, FRAME_HEADER_SIZE);
  out[FRAME_HEADER_SIZE + 4] = weight - 1;
  return out;
}
