// Property-based fuzzing of the HTTP/1 head parser, the chunked scanner and protocol detection: structured
// generators (request heads with mutations), the properties each input must keep, and a differential
// check against Node's own parser (llhttp) through a loopback server. Used by `npm run fuzz` (long) and
// by test/fuzz-http1.test.ts (short, in `npm test`).
import fc from 'fast-check';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ChunkedScanner, parseRequestHead, type RequestHead } from '../../src/proxy/http1/parse.js';
import { classify } from '../../src/proxy/detect/detect.js';
import { Codes, ProxyError } from '../../src/proxy/errors/errors.js';

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** The only errors the head parser may throw: anything else is a crash. */
const HEAD_CODES = new Set<string>([Codes.MALFORMED_REQUEST, Codes.VERSION_NOT_SUPPORTED]);

/** A parse taking longer than this (for heads of a few KiB) means work out of proportion to the input. */
export const MAX_PARSE_MS = 50;

// ---- generators ----

const METHODS = [
  'GET',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'HEAD',
  'OPTIONS',
  'CONNECT',
  'TRACE',
  'PROPFIND',
  'M-SEARCH',
];
const TARGETS = ['/', '/a/b?c=d&e=%20', '*', 'http://h:8080/x?y', 'h:443', '/%00', '/a b', '//x', '/\u00e9'];
const VERSIONS = [
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/1.0',
  'HTTP/2.0',
  'http/1.1',
];
const NAMES = [
  'host',
  'Content-Length',
  'Transfer-Encoding',
  'Connection',
  'Upgrade',
  'TE',
  'Expect',
  'Keep-Alive',
  'X-Forwarded-For',
  'Accept',
  'Cookie',
  'l5d-client-id',
  'X-A',
];
const VALUES = [
  'a.example:80',
  '0',
  '5',
  '05',
  '5, 5',
  '-1',
  '99999999999999999',
  'chunked',
  'gzip, chunked',
  'chunked, gzip',
  'identity',
  ' chunked',
  'close',
  'keep-alive',
  'Upgrade',
  'x-a, content-length',
  'websocket',
  'trailers',
  '100-continue',
  '',
  '"quoted, value"',
  'a\tb',
];
/** Bytes that mutations insert: the ones request smuggling is made of. */
const NASTY = [
  '\r',
  '\n',
  '\r\n',
  '\0',
  '\t',
  ' ',
  '\x0b',
  '\x0c',
  '\x7f',
  '\xa0',
  '\xff',
  ':',
  ',',
  ';',
  '"',
  '\\',
  '\x1b',
];

const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/);
const latin1 = (max: number) =>
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: max }).map((a) => String.fromCharCode(...a));

const header = fc.tuple(
  fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...NAMES) }, { weight: 1, arbitrary: token }),
  fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...VALUES) }, { weight: 1, arbitrary: latin1(16) }),
);

/** A request head that looks valid: request line, Host most of the time, a few more fields. */
const validLooking = fc
  .record({
    method: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: token }),
    target: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...TARGETS) }, { weight: 1, arbitrary: latin1(12) }),
    version: fc.constantFrom(...VERSIONS),
    host: fc.integer({ min: 0, max: 7 }).map((n) => n > 0),
    headers: fc.array(header, { maxLength: 6 }),
  })
  .map(({ method, target, version, host, headers }) => {
    const lines = [`${method} ${target} ${version}`];
    if (host) lines.push('Host: svc');
    for (const [n, v] of headers) lines.push(`${n}: ${v}`);
    return lines;
  });

/** One change to a head: insert a nasty byte, delete a byte, duplicate a line, change case, LF for CRLF. */
type Mutation =
  | { op: 'insert'; at: number; s: string }
  | { op: 'delete'; at: number }
  | { op: 'dup'; line: number }
  | { op: 'case'; at: number; len: number }
  | { op: 'lf'; line: number }
  | { op: 'fold'; line: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    s: fc.oneof(fc.constantFrom(...NASTY), latin1(3)),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('dup' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('case' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ op: fc.constant('lf' as const), line: fc.nat() }),
  fc.record({ op: fc.constant('fold' as const), line: fc.nat() }),
);

function mutate(lines: string[], muts: Mutation[]): string {
  const ls = [...lines];
  let text = '';
  for (const m of muts) {
    if (m.op === 'dup' && ls.length > 1)
      ls.splice((m.line % (ls.length - 1)) + 1, 0, ls[(m.line % (ls.length - 1)) + 1] as string);
    if (m.op === 'fold' && ls.length > 1) ls.splice((m.line % (ls.length - 1)) + 1, 0, ' folded');
  }
  const seps = ls.map(() => '\r\n');
  for (const m of muts) if (m.op === 'lf') seps[m.line % seps.length] = '\n';
  text = ls.map((l, i) => (i === 0 ? l : `${seps[i - 1]}${l}`)).join('');
  for (const m of muts) {
    const at =
      text.length === 0 ? 0 : m.op === 'insert' || m.op === 'delete' || m.op === 'case' ? m.at % text.length : 0;
    if (m.op === 'insert') text = text.slice(0, at) + m.s + text.slice(at);
    else if (m.op === 'delete') text = text.slice(0, at) + text.slice(at + 1);
    else if (m.op === 'case') {
      const part = text.slice(at, at + m.len);
      const flipped = [...part].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');
      // A few latin1 letters change case to a character outside latin1 (ÿ, µ): then the part stays.
      const fits = [...flipped].every((c) => c.charCodeAt(0) < 256) && flipped.length === part.length;
      text = text.slice(0, at) + (fits ? flipped : part) + text.slice(at + m.len);
    }
  }
  return text;
}

/** Request heads as bytes, ending in CRLFCRLF: mostly valid-looking heads with 0-3 mutations, some noise. */
export const requestHead: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 4, arbitrary: validLooking.map((ls) => mutate(ls, [])) },
    {
      weight: 5,
      arbitrary: fc
        .tuple(validLooking, fc.array(mutation, { minLength: 1, maxLength: 3 }))
        .map(([ls, m]) => mutate(ls, m)),
    },
    { weight: 1, arbitrary: latin1(64) },
  )
  .map((s) => Buffer.from(`${s}\r\n\r\n`, 'latin1'));

/** Chunked bodies: chunks with extensions, the last chunk, trailers, then 0-2 mutations. */
export const chunkedBody: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.array(
      fc.tuple(
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.constantFrom('', '', ';a', ';a=b', ';a="b;c"', ' ;a', ';', ';a b', ';a="\r\n"'),
        fc.constantFrom('x', 'X', '0', '00'),
      ),
      { maxLength: 4 },
    ),
    fc.array(fc.constantFrom('x-sum: 1', 'content-length: 3', 'no colon', 'x: \x01', ' folded: 1'), { maxLength: 2 }),
    fc.array(mutation, { maxLength: 2 }),
  )
  .map(([chunks, trailers, muts]) => {
    const lines: string[] = [];
    for (const [data, ext, hexCase] of chunks) {
      const size = data.length.toString(16);
      lines.push(`${hexCase === 'X' ? size.toUpperCase() : hexCase === '00' ? `00${size}` : size}${ext}`, data);
    }
    lines.push('0', ...trailers, '');
    return Buffer.from(`${mutate(lines, muts)}\r\n`, 'latin1');
  });

// ---- our side ----

export type Ours =
  | { readonly ok: true; readonly head: RequestHead; readonly ms: number }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly ms: number };

/** Parses as the proxy does: the head is everything before the first CRLFCRLF. Throws on a crash. */
export function parseOurs(input: Buffer): Ours {
  const end = input.indexOf(CRLFCRLF);
  const t0 = performance.now();
  try {
    const head = parseRequestHead(input.toString('latin1', 0, end));
    return { ok: true, head, ms: performance.now() - t0 };
  } catch (err) {
    const ms = performance.now() - t0;
    if (!(err instanceof ProxyError) || !HEAD_CODES.has(err.code))
      throw new Error(`parser crash on ${JSON.stringify(input.toString('latin1'))}: ${String(err)}`);
    return { ok: false, code: err.code, message: err.message, ms };
  }
}

/**
 * Scans a chunked body whole and at `splits` points, byte counts bounded: each scan call may look at
 * its buffer only once, and every split must end the same way (the same end, or an error). Returns
 * the end index (-1: wants more) or the error message; throws when the properties fail.
 */
export function scanChunked(
  body: Buffer,
  splits: number[],
  payload: Buffer[] = [],
): { end: number | 'error'; message?: string } {
  let message: string | undefined;
  const run = (cuts: number[], out?: Buffer[]): number | 'error' => {
    const s = new ChunkedScanner((m) => new ProxyError(Codes.MALFORMED_REQUEST, m));
    const onData = out ? (b: Buffer, a: number, e: number) => out.push(Buffer.from(b.subarray(a, e))) : undefined;
    let at = 0;
    try {
      for (const cut of [...cuts, body.length]) {
        if (cut <= at) continue;
        const r = s.scan(body.subarray(at, cut), onData);
        if (r !== -1) {
          if (r < 0 || r > cut - at) throw new Error(`scan returned ${r} for ${cut - at} bytes`);
          return at + r;
        }
        at = cut;
      }
      return -1;
    } catch (err) {
      if (err instanceof ProxyError) {
        message ??= err.message;
        return 'error';
      }
      throw new Error(`chunked scanner crash on ${JSON.stringify(body.toString('latin1'))}: ${String(err)}`);
    }
  };
  const whole = run([], payload);
  const cuts = [...new Set(splits.map((c) => c % (body.length + 1)))].sort((a, b) => a - b);
  const split = run(cuts);
  // Byte by byte: the same answer, and one call per byte at most (the scanner keeps its state, never re-reads).
  const bytewise = run(Array.from({ length: body.length }, (_, i) => i + 1));
  if (split !== whole || bytewise !== whole)
    throw new Error(
      `chunked scan depends on the split: ${whole} ${split} ${bytewise} on ${JSON.stringify(body.toString('latin1'))} at ${cuts.join(',')}`,
    );
  return { end: whole, ...(message !== undefined ? { message } : {}) };
}

/** Detection's properties: it never throws, an answer given once stays as more bytes come, and `final` always answers. */
export function checkDetect(input: Buffer, cut: number): void {
  const k = cut % (input.length + 1);
  const early = classify(input.subarray(0, k));
  const late = classify(input);
  if (early !== undefined && early !== late)
    throw new Error(
      `detection changed its mind: ${early} then ${late} on ${JSON.stringify(input.toString('latin1'))} at ${k}`,
    );
  if (classify(input, true) === undefined) throw new Error('detection undecided with final set');
}

// ---- llhttp's side ----

export type Theirs =
  | {
      readonly ok: true;
      readonly method: string;
      readonly target: string;
      readonly version: string;
      readonly raw: string[];
      /** With BODY_MARK in the head: the body llhttp de-chunked. */
      readonly body?: Buffer;
    }
  | { readonly ok: false; readonly reason: string };

/** A field that asks the oracle for the request's body, not only its head. */
const BODY_MARK = 'x-fuzz-body';
const BODY_HEAD = Buffer.from(`POST / HTTP/1.1\r\nhost: x\r\n${BODY_MARK}: 1\r\ntransfer-encoding: chunked\r\n\r\n`);

/** Node's HTTP server on loopback as an oracle: one connection per input, many in flight. */
export class Llhttp {
  private server: http.Server | undefined;
  private port = 0;
  private readonly waiting = new Map<number, (t: Theirs) => void>();

  async start(): Promise<void> {
    // Host is checked by our parser (RFC 9112 section 3.2), by Node's HTTP layer only: compare the parsers.
    this.server = http.createServer({ requireHostHeader: false, maxHeaderSize: 65536 });
    this.server.on('connection', (s: net.Socket) => s.on('error', () => {}));
    // A request may come as 'request', or (Expect, CONNECT, Upgrade) as one of the events Node uses instead.
    const onRequest = (req: http.IncomingMessage) => {
      const id = Number(req.socket.remotePort);
      if (req.headers[BODY_MARK] !== undefined) {
        const parts: Buffer[] = [];
        req.on('data', (d: Buffer) => parts.push(d));
        req.on('error', () => {});
        req.on('end', () => {
          this.settle(id, { ok: true, method: '', target: '', version: '', raw: [], body: Buffer.concat(parts) });
          req.socket.destroy();
        });
        return;
      }
      this.settle(id, {
        ok: true,
        method: req.method ?? '',
        target: req.url ?? '',
        version: req.httpVersion,
        raw: req.rawHeaders,
      });
      req.socket.destroy();
    };
    this.server.on('request', onRequest);
    this.server.on('checkExpectation', onRequest);
    this.server.on('connect', onRequest);
    this.server.on('upgrade', onRequest);
    this.server.on('clientError', (err: NodeJS.ErrnoException, s: net.Socket) => {
      this.settle(Number(s.remotePort), { ok: false, reason: err.code ?? err.message });
      s.destroy();
    });
    await new Promise<void>((r) => (this.server as http.Server).listen(0, '127.0.0.1', r));
    this.port = ((this.server as http.Server).address() as AddressInfo).port;
  }

  private settle(port: number, t: Theirs): void {
    const done = this.waiting.get(port);
    if (done) {
      this.waiting.delete(port);
      done(t);
    }
  }

  /** What llhttp makes of `input`: a request (its line and raw headers) or the error it gave. */
  parse(input: Buffer): Promise<Theirs> {
    return new Promise((resolve) => {
      const s = net.connect(this.port, '127.0.0.1');
      let port = 0;
      let settled = false;
      const finish = (t: Theirs) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.waiting.delete(port);
        s.destroy();
        resolve(t);
      };
      const timer = setTimeout(() => finish({ ok: false, reason: 'no request within 2 s' }), 2000);
      s.on('connect', () => {
        port = s.localPort ?? 0;
        this.waiting.set(port, finish);
        // The end too: llhttp then answers an incomplete head with an error instead of waiting.
        s.end(input);
      });
      s.on('error', () => {});
      s.on('close', () => setTimeout(() => finish({ ok: false, reason: 'closed without a request' }), 50));
    });
  }

  /** What llhttp makes of a chunked body: the payload, or the error it gave. */
  parseBody(body: Buffer): Promise<Theirs> {
    return this.parse(Buffer.concat([BODY_HEAD, body]));
  }

  close(): Promise<void> {
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

// ---- the comparison ----

/** Fields a proxy consumes or rewrites (RFC 9110 section 7.6.1): compared apart, not as headers. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'transfer-encoding']);

/** The end-to-end fields as [lower-case name, value], the framing apart: what both parsers must agree on. */
function normalize(pairs: string[], connectionNamed: Set<string>) {
  const out: string[] = [];
  const te: string[] = [];
  const cl: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const name = (pairs[i] as string).toLowerCase();
    const value = pairs[i + 1] as string;
    if (name === 'transfer-encoding') te.push(value);
    else if (name === 'content-length') cl.push(value);
    else if (!HOP.has(name) && !connectionNamed.has(name)) out.push(`${name}: ${value}`);
  }
  return { fields: out, te: te.join(', ').toLowerCase(), cl: [...new Set(cl)].join(',') };
}

/**
 * Where both accept: the same method, target, version, fields (names lower-cased, values without OWS),
 * transfer codings and content length. Returns what differs, or undefined.
 */
export function compare(ours: RequestHead, theirs: Theirs & { ok: true }): string | undefined {
  if (ours.method !== theirs.method) return `method ${ours.method} vs ${theirs.method}`;
  if (ours.target !== theirs.target) return `target ${JSON.stringify(ours.target)} vs ${JSON.stringify(theirs.target)}`;
  if (`1.${ours.minor}` !== theirs.version) return `version 1.${ours.minor} vs ${theirs.version}`;
  const named = new Set<string>();
  for (let i = 0; i < theirs.raw.length; i += 2)
    if ((theirs.raw[i] as string).toLowerCase() === 'connection')
      for (const t of (theirs.raw[i + 1] as string).split(',')) named.add(t.trim().toLowerCase());
  const a = normalize(ours.fields, named);
  const b = normalize(theirs.raw, named);
  if (a.fields.join('\n') !== b.fields.join('\n'))
    return `fields ${JSON.stringify(a.fields)} vs ${JSON.stringify(b.fields)}`;
  if (a.te !== b.te) return `transfer-encoding ${JSON.stringify(a.te)} vs ${JSON.stringify(b.te)}`;
  if (a.cl !== b.cl) return `content-length ${JSON.stringify(a.cl)} vs ${JSON.stringify(b.cl)}`;
  return undefined;
}

/**
 * Where our parser refuses what llhttp accepts, on purpose: the rule, and why. A refusal whose message
 * matches none of these is reported for a look (stricter is safe, but each rule should be a choice).
 */
export const STRICTER: readonly [RegExp, string][] = [
  [/without a host header/, 'RFC 9112 section 3.2: a 1.1 request without Host is a 400 (Node checks it above llhttp)'],
  [/more than one host header/, 'RFC 9112 section 3.2: more than one Host is a 400'],
  [/obsolete line folding/, 'RFC 9112 section 5.2: obs-fold refused rather than unfolded'],
  [
    /unknown transfer coding/,
    'RFC 9112 section 6.1: a coding the upstream may not know cannot frame a body we forward',
  ],
  [/does not end in chunked/, 'RFC 9112 section 6.3: a request body must be chunked last, or have a length'],
  [/both transfer-encoding and content-length/, 'RFC 9112 section 6.3: both framings is a smuggling attempt'],
  [/chunked applied more than once/, 'RFC 9112 section 7: chunked at most once'],
  [/transfer-encoding in an http\/1.0/, 'RFC 9112 section 6.1: transfer-encoding in 1.0 is faulty framing'],
  [/connection header names/, 'RFC 9110 section 7.6.1: Connection cannot remove a framing or routing field'],
  [/invalid content-length/, 'RFC 9110 section 8.6: 1*DIGIT, at most 15 digits (a safe integer), one value'],
  [/conflicting content-length/, 'RFC 9110 section 8.6: different values are a 400'],
  [/invalid request target/, 'RFC 9112 section 3.2: visible ASCII, origin, absolute, authority or asterisk form'],
  [/invalid character in header field/, 'RFC 9110 section 5.5: no controls but HTAB in a value'],
  [/invalid header field name/, 'RFC 9110 section 5.1: a field name is a token, nothing before the colon'],
  [/header line without a field name/, 'RFC 9112 section 5: every field line has a name and a colon'],
  [/malformed request line/, 'RFC 9112 section 3: exactly method SP target SP version'],
  [/invalid method/, 'RFC 9110 section 9.1: a method is a token'],
  [/malformed http version|is not supported/, 'RFC 9112 section 2.3: HTTP/1.0 and HTTP/1.1 only'],
];

/**
 * Where our parser accepts what llhttp refuses, on purpose: llhttp's reason, and why we accept. The
 * proxy forwards these; an upstream that refuses them answers 400 itself (no framing is in doubt).
 */
export const LENIENT: readonly [RegExp, string][] = [
  [/HPE_INVALID_METHOD/, 'RFC 9110 section 9.1: a method is any token; llhttp knows a fixed list'],
  [
    /HPE_UNEXPECTED_CONTENT_LENGTH/,
    'RFC 9110 section 8.6: equal Content-Length values are one length; the proxy forwards one field',
  ],
];

/** Where the chunked scanner refuses what llhttp reads, on purpose. */
export const STRICTER_CHUNKED: readonly [RegExp, string][] = [
  [/invalid chunk extension/, 'RFC 9112 section 7.1.1: an extension name is a token (llhttp lets ";=b" by)'],
  [/chunk size too large/, 'at most 12 hex digits, leading zeros counted: 2^48 bytes is more than any body'],
  [/trailer/, 'RFC 9110 section 6.5.1: trailers are field lines, and not content-length, transfer-encoding, host'],
];

export interface FuzzReport {
  inputs: number;
  acceptedBoth: number;
  refusedBoth: number;
  /** ours refuses, llhttp accepts: counted by the STRICTER rule that explains it. */
  stricter: Map<string, number>;
  /** ours refuses, llhttp accepts, and no STRICTER rule says why. */
  unexplained: string[];
  /** ours accepts, llhttp refuses: counted by the LENIENT rule that explains it. */
  lenient: Map<string, number>;
  /** ours accepts, llhttp refuses, and no LENIENT rule says why. */
  lenientUnexplained: string[];
  /** both accept, different results. */
  disagreements: string[];
  /** ours accepts a request that protocol detection would not send to the HTTP/1 parser. */
  undetected: string[];
  chunked: {
    inputs: number;
    /** the message ended, and llhttp read the same payload */
    acceptedBoth: number;
    refusedBoth: number;
    /** ours refuses, llhttp reads a body: counted by the STRICTER_CHUNKED rule that explains it */
    stricter: Map<string, number>;
    /** ours refuses, llhttp reads a body, no rule says why */
    unexplained: string[];
    /** ours ends the message, llhttp refuses */
    lenient: string[];
    /** both read a body, different payloads */
    disagreements: string[];
  };
  maxParseMs: number;
  seconds: number;
}

/**
 * Runs `n` generated heads (and as many chunked bodies) through the properties and the differential
 * check, `concurrency` llhttp connections in flight. Crashes and hangs throw; differences are counted.
 */
export async function fuzz(n: number, seed: number, concurrency = 32): Promise<FuzzReport> {
  const t0 = performance.now();
  const oracle = new Llhttp();
  await oracle.start();
  const r: FuzzReport = {
    inputs: 0,
    acceptedBoth: 0,
    refusedBoth: 0,
    stricter: new Map(),
    unexplained: [],
    lenient: new Map(),
    lenientUnexplained: [],
    disagreements: [],
    undetected: [],
    chunked: {
      inputs: 0,
      acceptedBoth: 0,
      refusedBoth: 0,
      stricter: new Map(),
      unexplained: [],
      lenient: [],
      disagreements: [],
    },
    maxParseMs: 0,
    seconds: 0,
  };
  const show = (b: Buffer) => JSON.stringify(b.toString('latin1'));
  try {
    const batch = 1000;
    for (let done = 0; done < n; done += batch) {
      const size = Math.min(batch, n - done);
      const heads = fc.sample(requestHead, { numRuns: size, seed: seed + done });
      const bodies = fc.sample(fc.tuple(chunkedBody, fc.array(fc.nat(), { maxLength: 3 }), fc.nat()), {
        numRuns: size,
        seed: seed + done + 1,
      });
      let j = 0;
      const bodyWorker = async () => {
        while (j < bodies.length) {
          const [body, splits] = bodies[j++] as [Buffer, number[], number];
          const payload: Buffer[] = [];
          const { end, message } = scanChunked(body, splits, payload);
          const oursOk = end !== 'error' && end !== -1;
          // What follows the message's end is the next request's, for llhttp as for the proxy.
          const theirs = await oracle.parseBody(oursOk ? body.subarray(0, end) : body);
          r.chunked.inputs++;
          const mine = Buffer.concat(payload);
          if (oursOk && theirs.ok) {
            if (theirs.body?.equals(mine)) r.chunked.acceptedBoth++;
            else
              r.chunked.disagreements.push(
                `payload ${show(mine)} vs ${show(theirs.body ?? Buffer.alloc(0))} on ${show(body)}`,
              );
          } else if (!oursOk && !theirs.ok) r.chunked.refusedBoth++;
          else if (oursOk && !theirs.ok) r.chunked.lenient.push(`${theirs.reason} on ${show(body)}`);
          else {
            const why = message ?? 'wants more bytes';
            const rule = STRICTER_CHUNKED.find(([re]) => re.test(why));
            if (rule) r.chunked.stricter.set(rule[1], (r.chunked.stricter.get(rule[1]) ?? 0) + 1);
            else r.chunked.unexplained.push(`${why} on ${show(body)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, bodyWorker));
      let i = 0;
      const worker = async () => {
        while (i < heads.length) {
          const input = heads[i] as Buffer;
          const cut = (bodies[i]?.[2] ?? 0) as number;
          i++;
          const ours = parseOurs(input);
          r.maxParseMs = Math.max(r.maxParseMs, ours.ms);
          if (ours.ms > MAX_PARSE_MS && input.length < 16384)
            throw new Error(`parse took ${ours.ms.toFixed(1)} ms on ${show(input)}`);
          checkDetect(input, cut);
          if (ours.ok && classify(input, true) !== 'http1') r.undetected.push(show(input));
          const theirs = await oracle.parse(input);
          r.inputs++;
          if (ours.ok && theirs.ok) {
            r.acceptedBoth++;
            const d = compare(ours.head, theirs);
            if (d !== undefined) r.disagreements.push(`${d} on ${show(input)}`);
          } else if (!ours.ok && !theirs.ok) r.refusedBoth++;
          else if (ours.ok && !theirs.ok) {
            const rule = LENIENT.find(([re]) => re.test(theirs.reason));
            if (rule) r.lenient.set(rule[1], (r.lenient.get(rule[1]) ?? 0) + 1);
            else r.lenientUnexplained.push(`${theirs.reason} on ${show(input)}`);
          } else if (!ours.ok) {
            const rule = STRICTER.find(([re]) => re.test(ours.message));
            if (rule) r.stricter.set(rule[1], (r.stricter.get(rule[1]) ?? 0) + 1);
            else r.unexplained.push(`${ours.message} on ${show(input)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    }
  } finally {
    await oracle.close();
  }
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}
