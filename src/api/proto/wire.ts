// The protobuf binary format (proto3) for the API's messages, driven by tables generated from the
// .proto files (tables.ts): what the proxy uses instead of protobufjs. A decoded message looks as
// @grpc/proto-loader gives it to the control plane with { keepCase, enums: String, longs: String,
// defaults: true }: field names as written in the .proto, every field present (absent scalars at their
// zero value, absent messages null, absent lists []), enums by name (an unknown number stays a
// number), 64-bit integers as decimal strings. Unknown fields are skipped, so a newer control plane
// can add fields. Encoding follows proto3: zero values are not written, repeated numbers are packed.
// https://protobuf.dev/programming-guides/encoding/
import { internalError } from '../../core/errors.js';

/** Scalar types this codec knows; the generator refuses a .proto that uses another. */
export const SCALARS = ['string', 'bytes', 'bool', 'int32', 'uint32', 'int64', 'uint64'] as const;
export type Scalar = (typeof SCALARS)[number];

/** One field: number, name as in the .proto, type (a scalar, or the full name of a message or an
 *  enum), and whether it is repeated. */
export type FieldSpec = readonly [no: number, name: string, type: string, repeated?: 'repeated'];

/** A method of a service: its request and response messages and whether each is a stream. */
export interface MethodSpec {
  readonly request: string;
  readonly response: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** What the generator writes: messages and enums by full name, methods by path (`/pkg.Service/Method`). */
export interface ProtoTables {
  readonly messages: Readonly<Record<string, readonly FieldSpec[]>>;
  /** Value names by number. */
  readonly enums: Readonly<Record<string, Readonly<Record<number, string>>>>;
  readonly methods: Readonly<Record<string, MethodSpec>>;
}

export interface MessageCodec<T> {
  readonly name: string;
  encode(message: T): Buffer;
  /** Throws a ProtoDecodeError for bytes that are not a valid encoding of the message. */
  decode(bytes: Uint8Array): T;
}

export class ProtoDecodeError extends Error {
  override name = 'ProtoDecodeError';
}

const enum Wire {
  VARINT = 0,
  FIXED64 = 1,
  LEN = 2,
  START_GROUP = 3,
  END_GROUP = 4,
  FIXED32 = 5,
}

// ---- compiled tables ----

type Kind = Scalar | 'enum' | 'message';

interface Field {
  readonly no: number;
  readonly name: string;
  readonly kind: Kind;
  readonly repeated: boolean;
  /** For enums: value name by number, and number by name. */
  readonly enumNames?: Readonly<Record<number, string>>;
  readonly enumNumbers?: ReadonlyMap<string, number>;
  /** For messages: resolved on first use (messages may refer to each other in any order). */
  message?: Message;
  readonly messageName?: string;
}

interface Message {
  readonly name: string;
  readonly fields: readonly Field[];
  readonly byNumber: ReadonlyMap<number, Field>;
}

/** Compiles the tables once; `codec(name)` and `method(path)` look things up and fail loudly on a name
 *  the tables do not have (so a typo fails at start-up, not on the first message). */
export class ProtoRegistry {
  readonly #tables: ProtoTables;
  readonly #messages = new Map<string, Message>();

  constructor(tables: ProtoTables) {
    this.#tables = tables;
  }

  codec<T>(name: string): MessageCodec<T> {
    const m = this.#message(name);
    return {
      name,
      encode: (message: T) => encodeMessage(m, message as Record<string, unknown>),
      decode: (bytes: Uint8Array) => {
        const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        return decodeMessage(m, new Reader(buf, 0, buf.length)) as T;
      },
    };
  }

  /** A method's path and the codecs of its request and response (what a gRPC channel calls it with). */
  method<Req, Res>(path: string): { readonly path: string; encode(request: Req): Buffer; decode(bytes: Buffer): Res } {
    const spec = this.#tables.methods[path];
    if (spec === undefined) throw internalError(`api tables: no method ${path}`);
    const request = this.codec<Req>(spec.request);
    const response = this.codec<Res>(spec.response);
    return { path, encode: request.encode, decode: response.decode };
  }

  #message(name: string): Message {
    let m = this.#messages.get(name);
    if (m !== undefined) return m;
    const specs = this.#tables.messages[name];
    if (specs === undefined) throw internalError(`api tables: no message ${name}`);
    const fields = specs.map(([no, fieldName, type, repeated]): Field => {
      const base = { no, name: fieldName, repeated: repeated === 'repeated' };
      if ((SCALARS as readonly string[]).includes(type)) return { ...base, kind: type as Scalar };
      const names = this.#tables.enums[type];
      if (names !== undefined) {
        const numbers = new Map(Object.entries(names).map(([n, v]) => [v, Number(n)]));
        return { ...base, kind: 'enum', enumNames: names, enumNumbers: numbers };
      }
      if (this.#tables.messages[type] === undefined) {
        throw internalError(`api tables: ${name}.${fieldName} has unknown type ${type}`);
      }
      return { ...base, kind: 'message', messageName: type };
    });
    m = { name, fields, byNumber: new Map(fields.map((f) => [f.no, f])) };
    this.#messages.set(name, m);
    for (const f of fields) if (f.messageName !== undefined) f.message = this.#message(f.messageName);
    return m;
  }
}

// ---- decoding ----

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new ProtoDecodeError('truncated message');
    return this.buf[this.pos++] as number;
  }

  /** A varint's low 32 bits, unsigned (what uint32, int32, bool and enum fields keep). */
  varint32(): number {
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      if (shift >= 70) throw new ProtoDecodeError('varint longer than 10 bytes');
      const b = this.byte();
      if (shift < 32) result |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result >>> 0;
    }
  }

  /** A whole varint as an unsigned 64-bit integer. */
  varint64(): bigint {
    let result = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (shift >= 70n) throw new ProtoDecodeError('varint longer than 10 bytes');
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
    }
  }

  /** The bounds of a length-delimited value. */
  span(): { start: number; end: number } {
    const len = this.varint32();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new ProtoDecodeError('truncated length-delimited field');
    this.pos = end;
    return { start, end };
  }

  skip(wire: number, no: number): void {
    switch (wire) {
      case Wire.VARINT:
        this.varint64();
        return;
      case Wire.FIXED64:
        this.advance(8);
        return;
      case Wire.LEN:
        this.span();
        return;
      case Wire.FIXED32:
        this.advance(4);
        return;
      case Wire.START_GROUP:
        for (;;) {
          const tag = this.varint32();
          if ((tag & 7) === Wire.END_GROUP) {
            if (tag >>> 3 !== no) throw new ProtoDecodeError(`group ${no} ended by ${tag >>> 3}`);
            return;
          }
          this.skip(tag & 7, tag >>> 3);
        }
      default:
        throw new ProtoDecodeError(`wire type ${wire} of field ${no} is not valid`);
    }
  }

  advance(n: number): void {
    if (this.pos + n > this.end) throw new ProtoDecodeError('truncated fixed-size field');
    this.pos += n;
  }
}

function zero(f: Field): unknown {
  if (f.repeated) return [];
  switch (f.kind) {
    case 'string':
      return '';
    case 'bytes':
      return Buffer.alloc(0);
    case 'bool':
      return false;
    case 'int32':
    case 'uint32':
      return 0;
    case 'int64':
    case 'uint64':
      return '0';
    case 'enum':
      return f.enumNames?.[0] ?? 0;
    case 'message':
      return null;
  }
}

function decodeMessage(m: Message, r: Reader): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of m.fields) out[f.name] = zero(f);
  while (!r.done()) {
    const tag = r.varint32();
    const no = tag >>> 3;
    const wire = tag & 7;
    if (no === 0) throw new ProtoDecodeError(`${m.name}: field number 0`);
    const f = m.byNumber.get(no);
    if (f === undefined) {
      r.skip(wire, no);
      continue;
    }
    if (f.repeated && wire === Wire.LEN && isNumeric(f.kind)) {
      // Packed: one length-delimited run of values (the proto3 default for repeated numbers).
      const { start, end } = r.span();
      const list = out[f.name] as unknown[];
      const run = new Reader(r.buf, start, end);
      while (!run.done()) list.push(readValue(f, Wire.VARINT, run, m));
      continue;
    }
    const v = readValue(f, wire, r, m);
    if (f.repeated) (out[f.name] as unknown[]).push(v);
    else out[f.name] = v;
  }
  return out;
}

function isNumeric(kind: Kind): boolean {
  return kind !== 'string' && kind !== 'bytes' && kind !== 'message';
}

function readValue(f: Field, wire: number, r: Reader, m: Message): unknown {
  const expected = isNumeric(f.kind) ? Wire.VARINT : Wire.LEN;
  if (wire !== expected) throw new ProtoDecodeError(`${m.name}.${f.name}: wire type ${wire}, expected ${expected}`);
  switch (f.kind) {
    case 'string': {
      const { start, end } = r.span();
      return r.buf.toString('utf8', start, end);
    }
    case 'bytes': {
      const { start, end } = r.span();
      return Buffer.from(r.buf.subarray(start, end));
    }
    case 'bool':
      return r.varint64() !== 0n;
    case 'int32':
      return r.varint32() | 0;
    case 'uint32':
      return r.varint32();
    case 'int64':
      return BigInt.asIntN(64, r.varint64()).toString();
    case 'uint64':
      return r.varint64().toString();
    case 'enum': {
      const n = r.varint32() | 0;
      return f.enumNames?.[n] ?? n;
    }
    case 'message': {
      const { start, end } = r.span();
      return decodeMessage(f.message as Message, new Reader(r.buf, start, end));
    }
  }
}

// ---- encoding ----

/** Collects the encoded bytes of one message; nested messages are encoded first, then framed. */
class Writer {
  readonly #chunks: Buffer[] = [];
  length = 0;

  varint(v: number | bigint): void {
    const bytes: number[] = [];
    for (let n = BigInt.asUintN(64, BigInt(v)); ; n >>= 7n) {
      if (n < 0x80n) {
        bytes.push(Number(n));
        break;
      }
      bytes.push(Number(n & 0x7fn) | 0x80);
    }
    this.push(Buffer.from(bytes));
  }

  tag(no: number, wire: Wire): void {
    this.varint(no * 8 + wire);
  }

  bytes(b: Buffer): void {
    this.varint(b.length);
    this.push(b);
  }

  push(b: Buffer): void {
    this.#chunks.push(b);
    this.length += b.length;
  }

  finish(): Buffer {
    return Buffer.concat(this.#chunks, this.length);
  }
}

function encodeMessage(m: Message, message: Record<string, unknown>): Buffer {
  const w = new Writer();
  for (const f of m.fields) {
    const v = message[f.name];
    if (v === undefined || v === null) continue;
    if (!f.repeated) {
      writeField(w, f, v, m);
      continue;
    }
    if (!Array.isArray(v)) throw new TypeError(`${m.name}.${f.name}: expected an array`);
    if (v.length === 0) continue;
    if (isNumeric(f.kind)) {
      const run = new Writer();
      for (const x of v) run.varint(numberOf(f, x, m));
      w.tag(f.no, Wire.LEN);
      w.bytes(run.finish());
    } else {
      for (const x of v) writeField(w, f, x, m, true);
    }
  }
  return w.finish();
}

/** Writes one value; a singular zero value is left out (proto3), a list element never is. */
function writeField(w: Writer, f: Field, v: unknown, m: Message, element = false): void {
  switch (f.kind) {
    case 'string': {
      if (typeof v !== 'string') throw new TypeError(`${m.name}.${f.name}: expected a string`);
      if (v === '' && !element) return;
      w.tag(f.no, Wire.LEN);
      w.bytes(Buffer.from(v, 'utf8'));
      return;
    }
    case 'bytes': {
      if (!(v instanceof Uint8Array)) throw new TypeError(`${m.name}.${f.name}: expected bytes`);
      if (v.length === 0 && !element) return;
      w.tag(f.no, Wire.LEN);
      w.bytes(Buffer.from(v));
      return;
    }
    case 'message': {
      if (typeof v !== 'object' || v === null) throw new TypeError(`${m.name}.${f.name}: expected an object`);
      w.tag(f.no, Wire.LEN);
      w.bytes(encodeMessage(f.message as Message, v as Record<string, unknown>));
      return;
    }
    default: {
      const n = numberOf(f, v, m);
      if (n === 0 || n === 0n) return;
      w.tag(f.no, Wire.VARINT);
      w.varint(n);
    }
  }
}

/** The number to write for a numeric field's value (an enum by name or number; 64-bit ones from a
 *  number, a decimal string or a bigint). */
function numberOf(f: Field, v: unknown, m: Message): number | bigint {
  const bad = (): TypeError => new TypeError(`${m.name}.${f.name}: ${JSON.stringify(v)} is not a valid ${f.kind}`);
  switch (f.kind) {
    case 'bool':
      if (typeof v !== 'boolean') throw bad();
      return v ? 1 : 0;
    case 'enum': {
      const n = typeof v === 'string' ? f.enumNumbers?.get(v) : v;
      if (typeof n !== 'number' || !Number.isInteger(n)) throw bad();
      return n;
    }
    case 'int32':
    case 'uint32': {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad();
      const ok = f.kind === 'int32' ? v >= -0x80000000 && v <= 0x7fffffff : v >= 0 && v <= 0xffffffff;
      if (!ok) throw bad();
      return v;
    }
    case 'int64':
    case 'uint64': {
      let n: bigint;
      try {
        n = BigInt(v as number | string | bigint);
      } catch {
        throw bad();
      }
      const ok = f.kind === 'int64' ? BigInt.asIntN(64, n) === n : BigInt.asUintN(64, n) === n;
      if (!ok) throw bad();
      return n;
    }
    default:
      throw bad();
  }
}
