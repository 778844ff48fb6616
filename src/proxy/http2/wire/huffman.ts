// HPACK's static Huffman code (RFC 7541 section 5.2, Appendix B): encoding of latin1 strings, and a
// decoder driven by a 4-bit state table built once at load time, so that decoding costs two table
// reads per input byte instead of a tree walk per bit.
import { compressionError, H2Codes } from './errors.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-code.js';

const EOS = 256;

// The decoder's states are the internal nodes of the code tree (a full binary tree over 257 leaves has
// 256 internal nodes, so a state fits a byte); state 0 is the root. For each state and each nibble the
// table says where 4 more bits lead: the next state, at most one symbol decoded on the way (codes are at
// least 5 bits long, so a nibble can finish one code but never two), or failure (EOS was decoded).
const FLAG_EMIT = 0x10000;
const FLAG_FAIL = 0x20000;

/** Entry = next state | symbol << 8 | flags, indexed by state << 4 | nibble. */
const DECODE = new Uint32Array(256 * 16);
/** Whether ending the string in this state is valid padding: the bits read since the last symbol are a
 *  prefix of EOS (all 1s) no longer than 7 bits (RFC 7541 section 5.2). */
const ACCEPT = new Uint8Array(256);

function buildDecoder(): void {
  // Children of internal nodes; a child >= 0 is an internal node, a child < 0 is the leaf -(symbol + 1).
  const child = new Int32Array(256 * 2).fill(0x7fffffff);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const len = HUFFMAN_LENGTHS[sym] as number;
    const code = HUFFMAN_CODES[sym] as number;
    let node = 0;
    for (let i = len - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const slot = node * 2 + bit;
      if (i === 0) {
        child[slot] = -(sym + 1);
        break;
      }
      let next = child[slot] as number;
      if (next === 0x7fffffff) {
        next = nodes++;
        child[slot] = next;
        depth[next] = (depth[node] as number) + 1;
        allOnes[next] = (allOnes[node] as number) & bit;
      }
      node = next;
    }
  }
  if (nodes !== 256) throw new Error(`hpack huffman: the code has ${nodes} internal nodes, not 256`);
  for (let state = 0; state < 256; state++) {
    ACCEPT[state] = (allOnes[state] as number) === 1 && (depth[state] as number) <= 7 ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let i = 3; i >= 0; i--) {
        const next = child[node * 2 + ((nibble >>> i) & 1)] as number;
        if (next >= 0) {
          node = next;
          continue;
        }
        const sym = -next - 1;
        if (sym === EOS) {
          entry |= FLAG_FAIL;
          break;
        }
        entry |= FLAG_EMIT | (sym << 8);
        node = 0;
      }
      DECODE[(state << 4) | nibble] = entry | node;
    }
  }
}
buildDecoder();

const eosError = () => compressionError(H2Codes.HPACK_HUFFMAN, 'huffman string contains eos');

/** The most bytes `len` Huffman-coded bytes can decode to (the shortest code is 5 bits). */
export function huffmanMaxDecodedLength(len: number): number {
  return Math.floor((len * 8) / 5);
}

/**
 * Decodes `src[start, end)` into `out` from `outPos` (room for huffmanMaxDecodedLength bytes is the
 * caller's job) and returns the end position in `out`. Throws a COMPRESSION_ERROR on EOS or bad padding.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, out: Uint8Array, outPos: number): number {
  let state = 0;
  let o = outPos;
  for (let i = start; i < end; i++) {
    const b = src[i] as number;
    let e = DECODE[(state << 4) | (b >>> 4)] as number;
    if ((e & FLAG_EMIT) !== 0) out[o++] = e >>> 8;
    if ((e & FLAG_FAIL) !== 0) throw eosError();
    e = DECODE[((e & 0xff) << 4) | (b & 0x0f)] as number;
    if ((e & FLAG_EMIT) !== 0) out[o++] = e >>> 8;
    if ((e & FLAG_FAIL) !== 0) throw eosError();
    state = e & 0xff;
  }
  if (ACCEPT[state] !== 1) throw compressionError(H2Codes.HPACK_HUFFMAN, 'huffman string has invalid padding');
  return o;
}

/** Length in bytes of the Huffman coding of `s` (one latin1 octet per character). */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff] as number;
  return (bits + 7) >>> 3;
}

/** Writes the Huffman coding of `s` at `out[pos]`, padded with 1s (EOS's prefix); returns the end. */
export function huffmanEncode(s: string, out: Uint8Array, pos: number): number {
  // `acc` holds fewer than 8 pending bits between symbols, so adding a code of up to 24 bits stays within
  // 32; the few longer codes (25 to 30 bits) go in two steps.
  let acc = 0;
  let bits = 0;
  let o = pos;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    let len = HUFFMAN_LENGTHS[sym] as number;
    let code = HUFFMAN_CODES[sym] as number;
    if (len > 24) {
      const high = len - 16;
      acc = (acc << high) | (code >>> 16);
      bits += high;
      while (bits >= 8) {
        bits -= 8;
        out[o++] = acc >>> bits;
      }
      acc &= (1 << bits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      out[o++] = acc >>> bits;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out[o++] = (acc << (8 - bits)) | (0xff >>> bits);
  return o;
}
