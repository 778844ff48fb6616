// The few pieces of DER (ITU-T X.690) a PKCS#10 request needs, written out by hand so the proxy needs
// no ASN.1 library: tag-length-value with definite lengths, and the primitive types the request uses.

/** One TLV: `tag`, the length (short form below 128, else long form), then `content`. */
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let head: number[];
  if (n < 0x80) head = [tag, n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    head = [tag, 0x80 | bytes.length, ...bytes];
  }
  return Buffer.concat([Buffer.from(head), body]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);

/** A SET OF a single element (DER orders a set's elements; one needs no ordering). */
export const setOf = (item: Buffer): Buffer => tlv(0x31, item);

export const contextConstructed = (n: number, ...items: Buffer[]): Buffer => tlv(0xa0 | n, ...items);

export const octetString = (b: Buffer): Buffer => tlv(0x04, b);

/** A BIT STRING of whole bytes (no unused bits). */
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);

export const booleanTrue = (): Buffer => tlv(0x01, Buffer.from([0xff]));

/** A small non-negative INTEGER (below 128: one content byte). */
export function smallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 127) throw new RangeError(`der: ${n} is not an integer from 0 to 127`);
  return tlv(0x02, Buffer.from([n]));
}

/** An OBJECT IDENTIFIER from its dotted form: the first two arcs as 40a+b, then each arc in base 128. */
export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [a, b] = arcs;
  if (a === undefined || b === undefined || arcs.some((x) => !Number.isSafeInteger(x) || x < 0))
    throw new RangeError(`der: "${dotted}" is not an object identifier`);
  const out: number[] = [];
  for (const arc of [40 * a + b, ...arcs.slice(2)]) {
    const bytes = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}
