// HPACK (RFC 7541): the decoder and the encoder of HTTP/2 field blocks, each with its dynamic table, and
// the bounds a proxy needs (header list size, table size) so that a small block cannot make it work hard.
// Strings are latin1: one character per octet, so a string's length is its size on the wire.
import { compressionError, H2Codes, H2Error, H2ErrorCode } from './errors.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength, huffmanMaxDecodedLength } from './huffman.js';
import { STATIC_BY_NAME, STATIC_COUNT, STATIC_NAMES, STATIC_VALUES, type StaticName } from './hpack-static.js';

/** Field flag: the field came (or must go) as a never-indexed literal (RFC 7541 section 6.2.3): a proxy
 *  re-encodes it the same way, so that no later hop puts it in a compression table. */
export const NEVER_INDEXED = 1;
/** Field flag: the field came (or must go) as a literal without indexing (RFC 7541 section 6.2.2). */
export const NOT_INDEXED = 2;

/** Per-entry overhead in table and header list sizes (RFC 7541 section 4.1, RFC 9113 section 6.5.2). */
export const ENTRY_OVERHEAD = 32;
/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 section 6.5.2). */
export const DEFAULT_TABLE_SIZE = 4096;

/** A decoded (or to-be-encoded) field list: names and values side by side, with a flag per field. */
export class HeaderList {
  readonly names: string[] = [];
  readonly values: string[] = [];
  /** NEVER_INDEXED / NOT_INDEXED per field, 0 otherwise. */
  readonly flags: number[] = [];
  /** Sum of name + value + 32 over the fields (RFC 9113 section 6.5.2). */
  size = 0;

  get length(): number {
    return this.names.length;
  }

  add(name: string, value: string, flags = 0): this {
    this.names.push(name);
    this.values.push(value);
    this.flags.push(flags);
    this.size += name.length + value.length + ENTRY_OVERHEAD;
    return this;
  }

  clear(): void {
    this.names.length = 0;
    this.values.length = 0;
    this.flags.length = 0;
    this.size = 0;
  }
}

/**
 * A dynamic table (RFC 7541 section 2.3.2): a FIFO of entries in a ring, newest first for indexing.
 * `onEvict` lets the encoder drop its lookups for an entry as it leaves.
 */
class DynamicTable {
  private names: string[] = new Array<string>(16);
  private values: string[] = new Array<string>(16);
  private mask = 15;
  /** Ring position of the oldest entry. */
  private oldest = 0;
  count = 0;
  /** Sum of entry sizes (name + value + 32). */
  size = 0;
  maxSize: number;
  /** Entries inserted since the start: the sequence number of the next one. */
  inserted = 0;

  constructor(maxSize: number) {
    this.maxSize = maxSize;
  }

  /** Name of the entry at 0-based position `i`, 0 being the newest. */
  name(i: number): string {
    return this.names[(this.oldest + this.count - 1 - i) & this.mask] as string;
  }

  value(i: number): string {
    return this.values[(this.oldest + this.count - 1 - i) & this.mask] as string;
  }

  /** Inserts an entry, evicting old ones to make room; one larger than the table empties it (4.4). */
  add(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    while (this.count > 0 && this.size + entrySize > this.maxSize) this.evictOldest();
    this.inserted++;
    if (entrySize > this.maxSize) return;
    if (this.count === this.mask + 1) this.grow();
    const at = (this.oldest + this.count) & this.mask;
    this.names[at] = name;
    this.values[at] = value;
    this.count++;
    this.size += entrySize;
  }

  setMaxSize(maxSize: number): void {
    this.maxSize = maxSize;
    while (this.size > maxSize) this.evictOldest();
  }

  protected onEvict(_seq: number, _name: string, _value: string): void {}

  private evictOldest(): void {
    const at = this.oldest;
    const name = this.names[at] as string;
    const value = this.values[at] as string;
    this.size -= name.length + value.length + ENTRY_OVERHEAD;
    this.onEvict(this.inserted - this.count, name, value);
    this.names[at] = '';
    this.values[at] = '';
    this.oldest = (at + 1) & this.mask;
    this.count--;
  }

  private grow(): void {
    const n = (this.mask + 1) * 2;
    const names = new Array<string>(n);
    const values = new Array<string>(n);
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.oldest + i) & this.mask] as string;
      values[i] = this.values[(this.oldest + i) & this.mask] as string;
    }
    this.names = names;
    this.values = values;
    this.mask = n - 1;
    this.oldest = 0;
  }
}

/** Integers above this are refused: no index, length or table size we accept comes near (RFC 7541 5.1). */
const MAX_INTEGER = 0x7fffffff;

export interface DecoderOptions {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertise, in bytes: the most the peer may use (default 4096). */
  maxTableSize?: number;
  /** The most a decoded field list may weigh, in bytes counted as RFC 9113 section 6.5.2 does. */
  maxHeaderListSize?: number;
}

/**
 * Decodes field blocks, one per HEADERS (+ CONTINUATION) sequence, in the order they arrived: the
 * dynamic table makes every block depend on the ones before, so a block that cannot be decoded is a
 * connection error (COMPRESSION_ERROR), except a list that is only too large (see HEADER_LIST_TOO_LARGE).
 */
export class HpackDecoder {
  private readonly table: DynamicTable;
  /** The limit the peer's size updates must respect: our acknowledged SETTINGS_HEADER_TABLE_SIZE. */
  private limit: number;
  /** We lowered the limit below the table's size: the next block must start with a size update. */
  private updateRequired = false;
  private readonly maxListSize: number;
  /** Where Huffman strings are decoded before becoming JS strings; grows up to the largest string seen. */
  private scratch: Buffer = Buffer.allocUnsafe(256);
  private pos = 0;
  private end = 0;
  private src: Buffer = Buffer.alloc(0);

  constructor(options: DecoderOptions = {}) {
    this.limit = options.maxTableSize ?? DEFAULT_TABLE_SIZE;
    // The peer starts at the protocol's default and must send a size update to go below (or above) it.
    this.table = new DynamicTable(Math.min(DEFAULT_TABLE_SIZE, this.limit));
    if (this.limit < DEFAULT_TABLE_SIZE) this.updateRequired = true;
    this.maxListSize = options.maxHeaderListSize ?? 65536;
  }

  /** Size in bytes of the dynamic table's entries, and the size the peer set for it. */
  get tableSize(): number {
    return this.table.size;
  }
  get tableMaxSize(): number {
    return this.table.maxSize;
  }
  get tableCount(): number {
    return this.table.count;
  }

  /**
   * Applies a new SETTINGS_HEADER_TABLE_SIZE of ours, once the peer acknowledged it. When it is below
   * the size the peer's encoder uses, the peer must shrink its table with a size update at the start of
   * its next block (RFC 7541 section 4.2), and we hold it to that.
   */
  setMaxTableSize(limit: number): void {
    this.limit = limit;
    if (limit < this.table.maxSize) this.updateRequired = true;
  }

  /** Decodes `block` into `out` (appending). Throws an H2Error; see the class comment for which kind. */
  decode(block: Buffer, out: HeaderList = new HeaderList()): HeaderList {
    this.src = block;
    this.pos = 0;
    this.end = block.length;
    const maxList = this.maxListSize;
    let atStart = true;
    // Once the list is too large we stop materializing fields but keep decoding, so the table stays in
    // step with the peer's and only this stream is refused (RFC 9113 section 4.3). The work stays linear
    // in the block's length: an indexed field costs a few operations and allocates nothing.
    let tooLarge = false;
    while (this.pos < this.end) {
      const b = block[this.pos] as number;
      if ((b & 0xe0) === 0x20) {
        // Dynamic table size update (RFC 7541 section 6.3): only before the first field (section 4.2).
        if (!atStart) throw compressionError(H2Codes.HPACK_TABLE_SIZE_UPDATE, 'table size update after a field');
        const size = this.readInt(5);
        if (size > this.limit) {
          throw compressionError(
            H2Codes.HPACK_TABLE_SIZE_UPDATE,
            `table size update to ${size} is above the limit of ${this.limit}`,
          );
        }
        this.table.setMaxSize(size);
        this.updateRequired = false;
        continue;
      }
      if (atStart) {
        if (this.updateRequired) {
          throw compressionError(H2Codes.HPACK_TABLE_SIZE_UPDATE, 'block does not start with the required size update');
        }
        atStart = false;
      }
      let name: string;
      let value: string;
      let flags = 0;
      if ((b & 0x80) !== 0) {
        // Indexed field (section 6.1).
        const index = this.readInt(7);
        if (tooLarge) {
          this.checkIndex(index);
          continue;
        }
        name = this.nameAt(index);
        value = this.valueAt(index);
      } else {
        const indexing = (b & 0x40) !== 0;
        // Literal with incremental indexing has a 6-bit index prefix; without and never indexed have 4.
        const index = this.readInt(indexing ? 6 : 4);
        if (!indexing) flags = (b & 0x10) !== 0 ? NEVER_INDEXED : NOT_INDEXED;
        if (tooLarge && !indexing) {
          if (index === 0) this.skipString();
          else this.checkIndex(index);
          this.skipString();
          continue;
        }
        name = index === 0 ? this.readString() : this.nameAt(index);
        value = this.readString();
        if (indexing) this.table.add(name, value);
      }
      if (tooLarge) continue;
      if (out.size + name.length + value.length + ENTRY_OVERHEAD > maxList) {
        tooLarge = true;
        continue;
      }
      out.add(name, value, flags);
    }
    if (atStart && this.updateRequired) {
      throw compressionError(H2Codes.HPACK_TABLE_SIZE_UPDATE, 'block does not start with the required size update');
    }
    this.src = EMPTY;
    if (tooLarge) {
      // A stream error: the stream id is the connection's to add (it knows which HEADERS this was).
      throw new H2Error(
        H2Codes.HEADER_LIST_TOO_LARGE,
        H2ErrorCode.PROTOCOL_ERROR,
        'stream',
        `header list larger than ${maxList} bytes`,
      );
    }
    return out;
  }

  /** Reads an integer with an N-bit prefix (RFC 7541 section 5.1). */
  private readInt(prefixBits: number): number {
    const src = this.src;
    const max = (1 << prefixBits) - 1;
    let value = (src[this.pos++] as number) & max;
    if (value < max) return value;
    let shift = 0;
    let b: number;
    do {
      if (this.pos >= this.end) throw compressionError(H2Codes.HPACK_TRUNCATED, 'block ends inside an integer');
      b = src[this.pos++] as number;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      // Zero-valued continuation bytes add nothing, so the byte count is bounded too.
      if (value > MAX_INTEGER || shift > 35) {
        throw compressionError(H2Codes.HPACK_INTEGER_OVERFLOW, 'integer too large');
      }
    } while ((b & 0x80) !== 0);
    return value;
  }

  private readString(): string {
    if (this.pos >= this.end) throw compressionError(H2Codes.HPACK_TRUNCATED, 'block ends before a string');
    const huffman = ((this.src[this.pos] as number) & 0x80) !== 0;
    const len = this.readInt(7);
    const start = this.pos;
    if (len > this.end - start) throw compressionError(H2Codes.HPACK_TRUNCATED, 'string runs past the block');
    this.pos = start + len;
    if (!huffman) return this.src.toString('latin1', start, start + len);
    const room = huffmanMaxDecodedLength(len);
    if (room > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(room, this.scratch.length * 2));
    const n = huffmanDecode(this.src, start, start + len, this.scratch, 0);
    return this.scratch.toString('latin1', 0, n);
  }

  private skipString(): void {
    if (this.pos >= this.end) throw compressionError(H2Codes.HPACK_TRUNCATED, 'block ends before a string');
    const len = this.readInt(7);
    if (len > this.end - this.pos) throw compressionError(H2Codes.HPACK_TRUNCATED, 'string runs past the block');
    this.pos += len;
  }

  private checkIndex(index: number): void {
    if (index === 0 || index > STATIC_COUNT + this.table.count) {
      throw compressionError(H2Codes.HPACK_BAD_INDEX, `index ${index} is not in the table`);
    }
  }

  private nameAt(index: number): string {
    if (index <= STATIC_COUNT) {
      if (index === 0) throw compressionError(H2Codes.HPACK_BAD_INDEX, 'index 0');
      return STATIC_NAMES[index] as string;
    }
    if (index - STATIC_COUNT > this.table.count) {
      throw compressionError(H2Codes.HPACK_BAD_INDEX, `index ${index} is not in the table`);
    }
    return this.table.name(index - STATIC_COUNT - 1);
  }

  private valueAt(index: number): string {
    // Only called after nameAt(index) accepted the index.
    return index <= STATIC_COUNT ? (STATIC_VALUES[index] as string) : this.table.value(index - STATIC_COUNT - 1);
  }
}

const EMPTY = Buffer.alloc(0);

/** The encoder's dynamic table, with lookups by name and by name and value to sequence numbers. */
class EncoderTable extends DynamicTable {
  /** name → value → sequence number of the newest entry with both. */
  readonly byPair = new Map<string, Map<string, number>>();
  /** name → sequence number of the newest entry with that name. */
  readonly byName = new Map<string, number>();

  insert(name: string, value: string): void {
    const seq = this.inserted;
    this.add(name, value);
    if (this.inserted - this.count > seq) return; // too large: it emptied the table and was not added
    let values = this.byPair.get(name);
    if (!values) this.byPair.set(name, (values = new Map()));
    values.set(value, seq);
    this.byName.set(name, seq);
  }

  /** HPACK index of an entry by its sequence number. */
  indexOf(seq: number): number {
    return STATIC_COUNT + this.inserted - seq;
  }

  protected override onEvict(seq: number, name: string, value: string): void {
    // Entries leave oldest first, so a map still pointing at this one has no newer entry to point to.
    const values = this.byPair.get(name);
    if (values !== undefined && values.get(value) === seq) {
      values.delete(value);
      if (values.size === 0) this.byPair.delete(name);
    }
    if (this.byName.get(name) === seq) this.byName.delete(name);
  }
}

export interface EncoderOptions {
  /** The most table we are willing to keep for this peer, in bytes (default 4096); the table used is the
   *  smaller of this and the peer's SETTINGS_HEADER_TABLE_SIZE. 0 disables the dynamic table. */
  maxTableSize?: number;
  /** Huffman-code strings: 'auto' when it is shorter (default), or always, or never. */
  huffman?: 'auto' | 'always' | 'never';
}

/** Sent as never-indexed literals whatever the field's flags say (RFC 7541 section 7.1.3): credentials,
 *  and short cookies, which are guessable from a compression table's behaviour. */
const SENSITIVE = STATIC_BY_NAME.get('authorization');
const SENSITIVE_PROXY = STATIC_BY_NAME.get('proxy-authorization');
const COOKIE = STATIC_BY_NAME.get('cookie');
const SHORT_COOKIE = 20;

function isSensitive(st: StaticName, value: string): boolean {
  return st === SENSITIVE || st === SENSITIVE_PROXY || (st === COOKIE && value.length < SHORT_COOKIE);
}

/**
 * Encodes field lists into blocks. Every field is indexed in the dynamic table unless its flags say
 * otherwise, it is sensitive (see SENSITIVE and short cookies), or it would take more than 3/4 of the
 * table (it would only flush the entries that are likely to be reused).
 */
export class HpackEncoder {
  private readonly table: EncoderTable;
  private readonly ownMax: number;
  private readonly huffman: 0 | 1 | 2;
  /** Size updates owed to the peer at the start of the next block (RFC 7541 section 4.2). */
  private pendingUpdate = false;
  private pendingMin = 0;
  private buf: Buffer = Buffer.allocUnsafe(1024);
  private pos = 0;

  constructor(options: EncoderOptions = {}) {
    this.ownMax = options.maxTableSize ?? DEFAULT_TABLE_SIZE;
    this.huffman = options.huffman === 'never' ? 0 : options.huffman === 'always' ? 2 : 1;
    this.table = new EncoderTable(DEFAULT_TABLE_SIZE);
    if (this.ownMax < DEFAULT_TABLE_SIZE) this.setPeerMaxTableSize(DEFAULT_TABLE_SIZE);
  }

  get tableSize(): number {
    return this.table.size;
  }
  get tableMaxSize(): number {
    return this.table.maxSize;
  }

  /** Applies the peer's SETTINGS_HEADER_TABLE_SIZE, in the order the values arrived. */
  setPeerMaxTableSize(peerLimit: number): void {
    const size = Math.min(peerLimit, this.ownMax);
    if (!this.pendingUpdate) {
      if (size === this.table.maxSize) return;
      this.pendingUpdate = true;
      this.pendingMin = size;
    } else if (size < this.pendingMin) this.pendingMin = size;
    // Shrink at once: the entries we may still reference must fit what the peer now allows.
    this.table.setMaxSize(size);
  }

  /**
   * Encodes `list` and returns a new Buffer of `headroom` unused bytes (room for a frame header)
   * followed by the block.
   */
  encode(list: HeaderList, headroom = 0): Buffer {
    this.pos = 0;
    if (this.pendingUpdate) {
      // The smallest size since the last block, then the final one when it is larger (section 4.2).
      this.ensure(12);
      this.writeInt(this.pendingMin, 5, 0x20);
      if (this.table.maxSize !== this.pendingMin) this.writeInt(this.table.maxSize, 5, 0x20);
      this.pendingUpdate = false;
    }
    const names = list.names;
    const values = list.values;
    const flags = list.flags;
    for (let i = 0; i < names.length; i++) {
      this.field(names[i] as string, values[i] as string, flags[i] ?? 0);
    }
    const out = Buffer.allocUnsafe(headroom + this.pos);
    this.buf.copy(out, headroom, 0, this.pos);
    return out;
  }

  private field(name: string, value: string, flags: number): void {
    // Room for the worst case: two integers and both strings at 30 bits per octet.
    this.ensure(12 + 4 * (name.length + value.length));
    const table = this.table;
    // One lookup for what the static table knows of the name (sensitive names are all in it).
    const st = STATIC_BY_NAME.get(name);
    if ((flags & NEVER_INDEXED) !== 0 || (st !== undefined && isSensitive(st, value))) {
      this.literal(st, name, value, 0x10, 4);
      return;
    }
    if (st !== undefined) {
      const index = st.values.get(value);
      if (index !== undefined) {
        this.writeInt(index, 7, 0x80);
        return;
      }
    }
    const seq = table.byPair.get(name)?.get(value);
    if (seq !== undefined) {
      this.writeInt(table.indexOf(seq), 7, 0x80);
      return;
    }
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if ((flags & NOT_INDEXED) !== 0 || entrySize * 4 > table.maxSize * 3) {
      this.literal(st, name, value, 0x00, 4);
      return;
    }
    this.literal(st, name, value, 0x40, 6);
    table.insert(name, value);
  }

  /** A literal field: `pattern` is the representation's first bits, `prefix` its index prefix width. */
  private literal(st: StaticName | undefined, name: string, value: string, pattern: number, prefix: number): void {
    let nameIndex = st?.index;
    if (nameIndex === undefined) {
      const seq = this.table.byName.get(name);
      if (seq !== undefined) nameIndex = this.table.indexOf(seq);
    }
    if (nameIndex !== undefined) this.writeInt(nameIndex, prefix, pattern);
    else {
      this.buf[this.pos++] = pattern;
      this.writeString(name);
    }
    this.writeString(value);
  }

  private writeString(s: string): void {
    const mode = this.huffman;
    if (mode !== 0) {
      const hlen = huffmanEncodedLength(s);
      if (mode === 2 || hlen < s.length) {
        this.writeInt(hlen, 7, 0x80);
        this.pos = huffmanEncode(s, this.buf, this.pos);
        return;
      }
    }
    this.writeInt(s.length, 7, 0);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  /** Writes `value` with an N-bit prefix, the first byte's other bits being `pattern` (section 5.1). */
  private writeInt(value: number, prefixBits: number, pattern: number): void {
    const buf = this.buf;
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      buf[this.pos++] = pattern | value;
      return;
    }
    buf[this.pos++] = pattern | max;
    value -= max;
    while (value >= 128) {
      buf[this.pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    buf[this.pos++] = value;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** Writes an HPACK integer into `out` at `pos` (RFC 7541 section 5.1); returns the end. For tests and tools. */
export function encodeInteger(out: Uint8Array, pos: number, value: number, prefixBits: number, pattern = 0): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[pos++] = pattern | value;
    return pos;
  }
  out[pos++] = pattern | max;
  value -= max;
  while (value >= 128) {
    out[pos++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}
