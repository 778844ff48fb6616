// HTTP/1.x message heads (RFC 9112) parsed strictly enough to frame messages safely: the request or
// status line, the headers the proxy must act on, and how the body is delimited. Bodies are not parsed
// here, only the chunked framing (ChunkedScanner), so that bytes can be moved without being copied.
import { Codes, ProxyError } from '../errors/errors.js';

export type BodyKind = 'none' | 'length' | 'chunked' | 'eof';

export interface MessageHead {
  /** 0 or 1: the minor version of HTTP/1.x. */
  readonly minor: number;
  /** Header fields kept when forwarding, as alternating raw name, value. */
  readonly fields: string[];
  readonly bodyKind: BodyKind;
  readonly contentLength: number;
  /** Whether the sender wants the connection kept open after this message. */
  readonly keepAlive: boolean;
  /** Value of the Upgrade header when Connection lists "upgrade". */
  readonly upgrade: string | undefined;
}

export interface RequestHead extends MessageHead {
  readonly method: string;
  readonly target: string;
  /** Host header (or the authority of an absolute-form target), "" when absent. */
  readonly authority: string;
  readonly expectContinue: boolean;
}

export interface ResponseHead extends MessageHead {
  readonly status: number;
  readonly reason: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** field-value may hold HTAB, SP, VCHAR and obs-text; anything else (CR, LF, NUL, other controls) is refused. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
/** request-target: visible ASCII only (no spaces, no controls, no obs-text). */
const BAD_TARGET = /[^\x21-\x7e]/;

/** tchar (RFC 9110 section 5.6.2) by byte, for the chunked scanner's extension and trailer names. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  TCHAR[c.charCodeAt(0)] = 1;

/**
 * Transfer codings a request may carry before the final chunked (RFC 9112 section 7). Anything else,
 * "identity" included (no longer registered), is refused: an upstream that does not know a coding
 * cannot agree with us on where the body ends.
 */
const REQUEST_CODINGS = new Set(['chunked', 'gzip', 'x-gzip', 'deflate', 'compress', 'x-compress']);

/** Fields a Connection header may not name: removing them would change the message's framing or target. */
const NOT_HOP_BY_HOP = new Set(['content-length', 'host']);

/**
 * The field value without its leading and trailing OWS (RFC 9110 section 5.5): SP and HTAB only, not
 * String.prototype.trim's wider set (VT, FF, NBSP...), which would hide "Transfer-Encoding:\x0bchunked".
 */
function trimOws(s: string, from: number): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return s.slice(a, b);
}

/** An authority's characters (RFC 3986 section 3.2): what routing reads must not be something else first. */
const AUTHORITY = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]+$/;
/** absolute-form (RFC 9112 section 3.2.2): scheme "://" authority, then path, query or nothing. */
const ABSOLUTE = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*)(?:[/?#]|$)/;

/** Hop-by-hop fields (RFC 9110 section 7.6.1) that the proxy consumes and never forwards. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'transfer-encoding']);

const malformed = (msg: string) => new ProxyError(Codes.MALFORMED_REQUEST, msg);

interface FieldScan {
  fields: string[];
  bodyKind: BodyKind;
  contentLength: number;
  close: boolean;
  keepAliveToken: boolean;
  upgradeToken: boolean;
  upgrade: string | undefined;
  host: string;
  expectContinue: boolean;
}

/** Parses header lines[1..]; `fail` builds the error (400 for requests, 502 for responses). */
function scanFields(lines: string[], fail: (m: string) => ProxyError): FieldScan {
  const fields: string[] = [];
  let contentLength = -1;
  let te: string | undefined;
  let connection: string[] | undefined;
  let upgrade: string | undefined;
  let host = '';
  let hosts = 0;
  let expectContinue = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const c0 = line.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09) throw fail('obsolete line folding in header field (RFC 9112 section 5.2)');
    const colon = line.indexOf(':');
    if (colon <= 0) throw fail(`header line without a field name: ${JSON.stringify(line.slice(0, 40))}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw fail(`invalid header field name ${JSON.stringify(name.slice(0, 40))}`);
    const value = trimOws(line, colon + 1);
    if (BAD_VALUE.test(value)) throw fail(`invalid character in header field ${name}`);
    const lower = name.toLowerCase();
    switch (lower) {
      case 'content-length': {
        if (!/^\d{1,15}$/.test(value)) throw fail(`invalid content-length ${JSON.stringify(value.slice(0, 20))}`);
        const n = Number(value);
        if (contentLength !== -1 && contentLength !== n) throw fail('conflicting content-length values');
        if (contentLength === -1) {
          fields.push(name, value);
        }
        contentLength = n;
        continue;
      }
      case 'transfer-encoding':
        te = te === undefined ? value : `${te}, ${value}`;
        continue;
      case 'connection':
        for (const t of value.split(',')) {
          const tok = trimOws(t, 0).toLowerCase();
          if (tok) (connection ??= []).push(tok);
        }
        continue;
      case 'upgrade':
        upgrade = value;
        continue;
      case 'host':
        hosts++;
        host = value;
        break;
      case 'expect':
        if (value.toLowerCase() === '100-continue') expectContinue = true;
        break;
      default:
        if (HOP_BY_HOP.has(lower)) continue;
    }
    fields.push(name, value);
  }
  if (hosts > 1) throw fail('more than one host header');
  // Fields that Connection names are hop-by-hop too (RFC 9110 section 7.6.1).
  let close = false;
  let keepAliveToken = false;
  let upgradeToken = false;
  if (connection) {
    const named = new Set<string>();
    for (const tok of connection) {
      if (tok === 'close') close = true;
      else if (tok === 'keep-alive') keepAliveToken = true;
      else if (tok === 'upgrade') upgradeToken = true;
      else if (NOT_HOP_BY_HOP.has(tok)) throw fail(`connection header names ${tok}`);
      else named.add(tok);
    }
    if (named.size) {
      for (let i = fields.length - 2; i >= 0; i -= 2) {
        if (named.has((fields[i] as string).toLowerCase())) fields.splice(i, 2);
      }
    }
  }
  let bodyKind: BodyKind = contentLength >= 0 ? 'length' : 'none';
  if (te !== undefined) {
    // RFC 9112 section 6.3: with both, the message is a smuggling attempt as far as we are concerned.
    if (contentLength >= 0) throw fail('both transfer-encoding and content-length');
    const codings = te.split(',').map((c) => trimOws(c, 0).toLowerCase());
    if (codings[codings.length - 1] !== 'chunked') bodyKind = 'eof';
    else {
      if (codings.indexOf('chunked') !== codings.length - 1) throw fail('chunked applied more than once');
      bodyKind = 'chunked';
    }
    // Codings other than chunked (gzip, ...) are end-to-end and are kept.
    fields.push('transfer-encoding', te);
  }
  return {
    fields,
    bodyKind,
    contentLength: Math.max(contentLength, 0),
    close,
    keepAliveToken,
    upgradeToken,
    upgrade: upgradeToken ? upgrade : undefined,
    host,
    expectContinue,
  };
}

/** Parses a request head: `text` is everything before the blank line (latin1), without the final CRLFCRLF. */
export function parseRequestHead(text: string): RequestHead {
  const lines = text.split('\r\n');
  const line = lines[0] as string;
  const sp1 = line.indexOf(' ');
  const sp2 = sp1 === -1 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 === -1 || line.indexOf(' ', sp2 + 1) !== -1) {
    throw malformed(`malformed request line ${JSON.stringify(line.slice(0, 60))}`);
  }
  const method = line.slice(0, sp1);
  const target = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw malformed(`invalid method ${JSON.stringify(method.slice(0, 20))}`);
  if (target.length === 0 || BAD_TARGET.test(target)) throw malformed('invalid request target');
  let minor: number;
  if (version === 'HTTP/1.1') minor = 1;
  else if (version === 'HTTP/1.0') minor = 0;
  else if (/^HTTP\/\d\.\d$/.test(version))
    throw new ProxyError(Codes.VERSION_NOT_SUPPORTED, `http version ${version} is not supported here`);
  else throw malformed(`malformed http version ${JSON.stringify(version.slice(0, 20))}`);
  if (minor === 0 && lines.length > 1 && /\r\ntransfer-encoding:/i.test(text)) {
    // RFC 9112 section 6.1: transfer-encoding in HTTP/1.0 is faulty framing.
    throw malformed('transfer-encoding in an http/1.0 request');
  }
  const f = scanFields(lines, malformed);
  if (f.bodyKind === 'eof') throw malformed('request transfer-encoding does not end in chunked');
  if (f.bodyKind === 'chunked') {
    const te = f.fields[f.fields.length - 1] as string;
    if (te.length !== 7) {
      for (const c of te.split(',')) {
        const coding = trimOws(c, 0).toLowerCase();
        if (!REQUEST_CODINGS.has(coding))
          throw malformed(`unknown transfer coding ${JSON.stringify(coding.slice(0, 20))}`);
      }
    }
  }
  if (minor === 1 && f.host === '' && lines.length > 0) {
    // RFC 9112 section 3.2: a 1.1 request without Host is answered 400.
    throw malformed('http/1.1 request without a host header');
  }
  let authority = f.host;
  if (method === 'CONNECT') {
    if (!AUTHORITY.test(target)) throw malformed('invalid request target');
    authority = target;
  } else if (target.charCodeAt(0) !== 0x2f /* "/" */ && target !== '*') {
    const m = ABSOLUTE.exec(target);
    if (!m) throw malformed('invalid request target');
    authority = m[1] as string;
  }
  return {
    method,
    target,
    minor,
    fields: f.fields,
    bodyKind: f.bodyKind,
    contentLength: f.contentLength,
    keepAlive: minor === 1 ? !f.close : f.keepAliveToken && !f.close,
    upgrade: f.upgrade,
    authority,
    expectContinue: f.expectContinue,
  };
}

/** Parses a response head; its framing depends on the request it answers (RFC 9112 section 6.3). */
export function parseResponseHead(text: string, requestMethod: string): ResponseHead {
  const bad = (m: string) => new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream sent an invalid response: ${m}`);
  const lines = text.split('\r\n');
  const line = lines[0] as string;
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(line);
  if (!m) throw bad(`malformed status line ${JSON.stringify(line.slice(0, 60))}`);
  const minor = Number(m[1]);
  const status = Number(m[2]);
  const f = scanFields(lines, bad);
  let bodyKind = f.bodyKind;
  if (requestMethod === 'HEAD' || status < 200 || status === 204 || status === 304) bodyKind = 'none';
  else if (requestMethod === 'CONNECT' && status < 300) bodyKind = 'none';
  else if (f.bodyKind === 'none') bodyKind = 'eof';
  else if (f.bodyKind === 'length' && f.contentLength === 0) bodyKind = 'none';
  return {
    minor,
    status,
    reason: m[3] ?? '',
    fields: f.fields,
    bodyKind: bodyKind === 'length' && f.contentLength === 0 ? 'none' : bodyKind,
    contentLength: f.contentLength,
    keepAlive: minor === 1 ? !f.close : f.keepAliveToken && !f.close,
    upgrade: f.upgrade,
  };
}

const enum S {
  Size,
  ExtNameStart,
  ExtName,
  ExtValStart,
  ExtToken,
  ExtQuoted,
  ExtQuotedPair,
  ExtAfterQuote,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLineLf,
  EndLf,
  Done,
}

/** Longest chunk-size line extension and trailer section we accept, in bytes. */
const MAX_LINE = 4096;
const MAX_TRAILERS = 16384;
/** Trailer fields refused (RFC 9110 section 6.5.1), and the longest of their names. */
const FORBIDDEN_TRAILERS = new Set(['content-length', 'transfer-encoding', 'host']);
const MAX_FORBIDDEN_TRAILER = 17;

/**
 * Follows the chunked framing (RFC 9112 section 7.1) of a body as its bytes go by, to find where the
 * message ends, without copying. With `onData` it also hands out the payload ranges (de-chunking, for
 * HTTP/1.0 clients). Throws a ProxyError built by `fail` on invalid framing.
 */
export class ChunkedScanner {
  private state = S.Size;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  /** The current trailer field's name, lower case, kept only while it could still be a forbidden one. */
  private trailerName = '';

  constructor(private readonly fail: (m: string) => ProxyError) {}

  get done(): boolean {
    return this.state === S.Done;
  }

  /** Returns the index just past the end of the message in `buf`, or -1 if all of `buf` belongs to it. */
  scan(buf: Buffer, onData?: (buf: Buffer, start: number, end: number) => void): number {
    const n = buf.length;
    let i = 0;
    while (i < n) {
      switch (this.state) {
        case S.Data: {
          const take = Math.min(this.size, n - i);
          if (onData) onData(buf, i, i + take);
          this.size -= take;
          i += take;
          if (this.size === 0) this.state = S.DataCr;
          continue;
        }
        case S.Size: {
          const c = buf[i] as number;
          const v =
            c >= 0x30 && c <= 0x39
              ? c - 0x30
              : c >= 0x61 && c <= 0x66
                ? c - 0x57
                : c >= 0x41 && c <= 0x46
                  ? c - 0x37
                  : -1;
          if (v >= 0) {
            if (++this.digits > 12) throw this.fail('chunk size too large');
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) throw this.fail('invalid chunk size');
          else if (c === 0x0d) this.state = S.SizeLf;
          else if (c === 0x3b) {
            this.state = S.ExtNameStart;
            this.lineBytes = 0;
          } else throw this.fail('invalid chunk size');
          break;
        }
        case S.SizeLf:
          if (buf[i] !== 0x0a) throw this.fail('invalid chunk size line ending');
          this.digits = 0;
          if (this.size === 0) {
            this.state = S.TrailerStart;
            this.trailerBytes = 0;
          } else this.state = S.Data;
          break;
        case S.DataCr:
          if (buf[i] !== 0x0d) throw this.fail('chunk data longer than its size');
          this.state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[i] !== 0x0a) throw this.fail('chunk data longer than its size');
          this.state = S.Size;
          break;
        // Trailer fields (RFC 9112 section 7.1.2) are forwarded as they came: each line must be a field
        // line (token, ":", a value without controls), and none may be a framing or routing field (RFC 9110
        // section 6.5.1), which a recipient merging trailers into the head could act on.
        case S.TrailerStart: {
          const c = buf[i] as number;
          if (c === 0x0d) this.state = S.EndLf;
          else if (TCHAR[c]) {
            this.state = S.TrailerName;
            this.trailerName = String.fromCharCode(c | 0x20);
            this.trailerBytes++;
          } else throw this.fail('invalid trailer line');
          break;
        }
        case S.TrailerName: {
          const c = buf[i] as number;
          if (++this.trailerBytes > MAX_TRAILERS) throw this.fail('trailer section too large');
          if (c === 0x3a) {
            if (FORBIDDEN_TRAILERS.has(this.trailerName)) throw this.fail(`${this.trailerName} in a trailer`);
            this.state = S.TrailerValue;
          } else if (!TCHAR[c]) throw this.fail('invalid trailer field name');
          else if (this.trailerName.length <= MAX_FORBIDDEN_TRAILER) this.trailerName += String.fromCharCode(c | 0x20);
          break;
        }
        case S.TrailerValue: {
          const c = buf[i] as number;
          if (++this.trailerBytes > MAX_TRAILERS) throw this.fail('trailer section too large');
          if (c === 0x0d) this.state = S.TrailerLineLf;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw this.fail('invalid trailer line');
          break;
        }
        case S.TrailerLineLf:
          if (buf[i] !== 0x0a) throw this.fail('invalid trailer line ending');
          this.state = S.TrailerStart;
          break;
        case S.EndLf:
          if (buf[i] !== 0x0a) throw this.fail('invalid end of chunked body');
          this.state = S.Done;
          return i + 1;
        case S.Done:
          return i;
        default:
          this.extension(buf[i] as number);
      }
      i++;
    }
    return -1;
  }

  /**
   * One byte of a chunk extension (RFC 9112 section 7.1.1), checked to its grammar because chunk lines
   * are forwarded as they came: a name is a token, a value a token or a quoted-string, which cannot hold
   * CR or LF. The BWS the grammar allows around ";" and "=" is refused, as llhttp refuses it: we can
   * pass on only what a strict upstream reads the same way. Extensions are rare: the cost is theirs.
   */
  private extension(c: number): void {
    if (++this.lineBytes > MAX_LINE) throw this.fail('chunk extension too long');
    switch (this.state) {
      case S.ExtNameStart:
        if (!TCHAR[c]) throw this.fail('invalid chunk extension');
        this.state = S.ExtName;
        return;
      case S.ExtName:
      case S.ExtToken:
        if (c === 0x0d) this.state = S.SizeLf;
        else if (c === 0x3b) this.state = S.ExtNameStart;
        else if (c === 0x3d && this.state === S.ExtName) this.state = S.ExtValStart;
        else if (!TCHAR[c]) throw this.fail('invalid chunk extension');
        return;
      case S.ExtValStart:
        if (c === 0x22) this.state = S.ExtQuoted;
        else if (TCHAR[c]) this.state = S.ExtToken;
        else throw this.fail('invalid chunk extension');
        return;
      case S.ExtQuoted:
        // qdtext and quoted-pair (RFC 9110 section 5.6.4): no controls but HTAB, so never CR or LF.
        if (c === 0x22) this.state = S.ExtAfterQuote;
        else if (c === 0x5c) this.state = S.ExtQuotedPair;
        else if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw this.fail('invalid chunk extension');
        return;
      case S.ExtQuotedPair:
        if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw this.fail('invalid chunk extension');
        this.state = S.ExtQuoted;
        return;
      case S.ExtAfterQuote:
        if (c === 0x0d) this.state = S.SizeLf;
        else if (c === 0x3b) this.state = S.ExtNameStart;
        else throw this.fail('invalid chunk extension');
        return;
      default:
        throw this.fail('invalid chunked framing');
    }
  }
}
