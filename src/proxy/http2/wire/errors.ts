// Typed errors of our HTTP/2 wire engine (frames, HPACK, flow control): each carries a stable code, the
// RFC 9113 error code to put on the wire and whether it ends one stream (RST_STREAM) or the connection
// (GOAWAY). The connection's rescue point reads those two fields; it never parses the message.
import { OutriggerError } from '../../../core/errors.js';

/** RFC 9113 section 7: error codes carried by RST_STREAM and GOAWAY. */
export const H2ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export type H2ErrorCodeValue = (typeof H2ErrorCode)[keyof typeof H2ErrorCode];

const CODE_NAMES: readonly string[] = Object.keys(H2ErrorCode);

/** The RFC 9113 name of an error code; unknown codes (which a peer may send, section 7) by number. */
export function h2ErrorCodeName(code: number): string {
  return CODE_NAMES[code] ?? `UNKNOWN_ERROR_0x${code.toString(16)}`;
}

export const H2Codes = {
  /** The client did not start with the connection preface (RFC 9113 section 3.4). */
  BAD_PREFACE: 'OUTR_ERR_H2_BAD_PREFACE',
  /** A frame breaks a framing rule of RFC 9113 (wrong stream, bad padding, CONTINUATION out of place). */
  PROTOCOL: 'OUTR_ERR_H2_PROTOCOL',
  /** A frame is longer than SETTINGS_MAX_FRAME_SIZE, or its type has a fixed length it does not have. */
  FRAME_SIZE: 'OUTR_ERR_H2_FRAME_SIZE',
  /** A SETTINGS value out of its range (RFC 9113 section 6.5.2). */
  SETTINGS_VALUE: 'OUTR_ERR_H2_SETTINGS_VALUE',
  /** The peer sent PUSH_PROMISE though we never enable push. */
  PUSH_REFUSED: 'OUTR_ERR_H2_PUSH_REFUSED',
  /** A flow-control window went past 2^31-1, or the peer sent more than its window allowed. */
  FLOW_CONTROL: 'OUTR_ERR_H2_FLOW_CONTROL',
  /** A field block (HEADERS + CONTINUATION) is longer than we accept before decoding it. */
  FIELD_BLOCK_TOO_LARGE: 'OUTR_ERR_H2_FIELD_BLOCK_TOO_LARGE',
  /** HPACK: the block ends in the middle of a representation. */
  HPACK_TRUNCATED: 'OUTR_ERR_HPACK_TRUNCATED',
  /** HPACK: an integer does not fit our bound (RFC 7541 section 5.1 leaves the bound to us). */
  HPACK_INTEGER_OVERFLOW: 'OUTR_ERR_HPACK_INTEGER_OVERFLOW',
  /** HPACK: an index of 0 or past the end of the static and dynamic tables (RFC 7541 section 2.3.3). */
  HPACK_BAD_INDEX: 'OUTR_ERR_HPACK_BAD_INDEX',
  /** HPACK: a Huffman string with padding longer than 7 bits, padding not of 1s, or EOS (RFC 7541 5.2). */
  HPACK_HUFFMAN: 'OUTR_ERR_HPACK_HUFFMAN',
  /** HPACK: a dynamic table size update not at the start of a block, above our limit, or missing after
   *  we lowered the limit (RFC 7541 sections 4.2 and 6.3). */
  HPACK_TABLE_SIZE_UPDATE: 'OUTR_ERR_HPACK_TABLE_SIZE_UPDATE',
  /** The decoded field list is larger than max header list size (name + value + 32 per field, RFC 9113
   *  section 6.5.2). The decoder kept its table in step, so only the stream is refused. */
  HEADER_LIST_TOO_LARGE: 'OUTR_ERR_H2_HEADER_LIST_TOO_LARGE',
  /** A frame the stream's state does not allow (RFC 9113 section 5.1): DATA or HEADERS after the peer
   *  ended the stream, a frame on an idle stream, a stream identifier going backwards. */
  STREAM_STATE: 'OUTR_ERR_H2_STREAM_STATE',
  /** A malformed field section or message (RFC 9113 section 8.1.1): bad pseudo-header fields, uppercase
   *  or connection-specific names, or DATA that does not add up to content-length. */
  MALFORMED: 'OUTR_ERR_H2_MALFORMED',
  /** A new stream over our SETTINGS_MAX_CONCURRENT_STREAMS, or after our GOAWAY. */
  REFUSED_STREAM: 'OUTR_ERR_H2_REFUSED_STREAM',
  /** The peer sends cheap frames that cost us work faster than we allow: resets (CVE-2023-44487), PING,
   *  SETTINGS, empty DATA, or frames that make us reset its streams. */
  FLOOD: 'OUTR_ERR_H2_FLOOD',
  /** DATA we owe the peer made no progress for the stall timeout: its window stayed shut (the stream is
   *  reset with CANCEL) or it read nothing from its socket (the connection ends). A zero-window or slow
   *  read peer (CVE-2019-9511, CVE-2019-9517) would otherwise hold our buffers and the upstream's for ever. */
  SEND_STALLED: 'OUTR_ERR_H2_SEND_STALLED',
  /** The peer did not acknowledge our SETTINGS in time (RFC 9113 section 6.5.3). */
  SETTINGS_TIMEOUT: 'OUTR_ERR_H2_SETTINGS_TIMEOUT',
  /** The peer did not answer a keep-alive PING in time. */
  PING_TIMEOUT: 'OUTR_ERR_H2_PING_TIMEOUT',
  /** The peer sent GOAWAY with an error code, or reset a stream, or the socket closed under open streams. */
  PEER_ERROR: 'OUTR_ERR_H2_PEER_ERROR',
  /** Our own handler threw while the connection called it: the connection ends with INTERNAL_ERROR. */
  INTERNAL: 'OUTR_ERR_H2_INTERNAL',
} as const;

export type H2Code = (typeof H2Codes)[keyof typeof H2Codes];

/** Whether an error ends one stream (RST_STREAM) or the whole connection (GOAWAY), RFC 9113 section 5.4. */
export type H2Scope = 'stream' | 'connection';

export class H2Error extends OutriggerError {
  declare readonly code: H2Code;
  /** The RFC 9113 error code for RST_STREAM or GOAWAY. */
  readonly h2Code: H2ErrorCodeValue;
  readonly scope: H2Scope;
  /** The stream a stream error applies to (0 for connection errors). */
  readonly streamId: number;
  constructor(code: H2Code, h2Code: H2ErrorCodeValue, scope: H2Scope, message: string, streamId = 0) {
    super(code, message);
    this.name = 'H2Error';
    this.h2Code = h2Code;
    this.scope = scope;
    this.streamId = streamId;
  }
}

/** A connection error (GOAWAY with `h2Code`). */
export function connectionError(code: H2Code, h2Code: H2ErrorCodeValue, message: string): H2Error {
  return new H2Error(code, h2Code, 'connection', message);
}

/** A stream error (RST_STREAM on `streamId` with `h2Code`). */
export function streamError(code: H2Code, h2Code: H2ErrorCodeValue, streamId: number, message: string): H2Error {
  return new H2Error(code, h2Code, 'stream', message, streamId);
}

/** HPACK decoding errors are connection errors of type COMPRESSION_ERROR (RFC 9113 section 4.3). */
export function compressionError(code: H2Code, message: string): H2Error {
  return new H2Error(code, H2ErrorCode.COMPRESSION_ERROR, 'connection', `hpack: ${message}`);
}
