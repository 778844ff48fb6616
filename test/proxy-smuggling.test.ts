// Request smuggling through a running proxy: a corpus of hostile HTTP/1.1 (and HTTP/2) requests, each of
// which must be refused (400, connection closed) or reach the upstream as exactly one request whose
// body is framed one way, judged on the raw bytes the upstream received (RFC 9112 sections 6.1, 6.3,
// 7.1; RFC 9110 section 5.5; RFC 9113 section 8.2.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { closeServer, listen, startTestProxy } from './helpers.js';

/** One request as a strict reader of the upstream's bytes frames it; `error` when it cannot. */
interface Framed {
  head: string;
  body: Buffer;
}

/**
 * Frames requests out of `buf` strictly: a head ends at CRLFCRLF, the body by exactly one of chunked or
 * Content-Length. Returns the complete requests, the bytes consumed, and an error for ambiguous framing.
 */
function frameRequests(buf: Buffer): { requests: Framed[]; used: number; error?: string } {
  const requests: Framed[] = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf('\r\n\r\n', at, 'latin1');
    if (end === -1) break;
    const head = buf.toString('latin1', at, end);
    const lines = head.split('\r\n');
    if (lines.some((l) => l.includes('\n') || l.includes('\r'))) return { requests, used: at, error: 'bare CR or LF' };
    const field = (name: string) =>
      lines
        .slice(1)
        .filter((l) => l.slice(0, l.indexOf(':')).toLowerCase() === name)
        .map((l) => l.slice(l.indexOf(':') + 1).trim());
    const te = field('transfer-encoding');
    const cl = field('content-length');
    if (te.length && cl.length) return { requests, used: at, error: 'both transfer-encoding and content-length' };
    if (cl.length > 1) return { requests, used: at, error: 'more than one content-length' };
    if (te.length > 1) return { requests, used: at, error: 'more than one transfer-encoding' };
    let p = end + 4;
    let body: Buffer;
    if (te.length) {
      if (te[0]?.toLowerCase().split(',').pop()?.trim() !== 'chunked')
        return { requests, used: at, error: `transfer-encoding ${te[0]}` };
      const parts: Buffer[] = [];
      for (;;) {
        const eol = buf.indexOf('\r\n', p, 'latin1');
        if (eol === -1) return { requests, used: at };
        const m =
          /^([0-9a-fA-F]{1,8})(;[!#$%&'*+\-.^_`|~0-9A-Za-z]+(=([!#$%&'*+\-.^_`|~0-9A-Za-z]+|"[^"\\]*"))?)*$/.exec(
            buf.toString('latin1', p, eol),
          );
        if (!m) return { requests, used: at, error: `chunk line ${JSON.stringify(buf.toString('latin1', p, eol))}` };
        const size = parseInt(m[1] as string, 16);
        p = eol + 2;
        if (size === 0) {
          const t = buf.indexOf('\r\n\r\n', p - 2, 'latin1');
          if (t === -1) return { requests, used: at };
          p = t + 4;
          break;
        }
        if (buf.length < p + size + 2) return { requests, used: at };
        parts.push(buf.subarray(p, p + size));
        if (buf.toString('latin1', p + size, p + size + 2) !== '\r\n') return { requests, used: at, error: 'chunk' };
        p += size + 2;
      }
      body = Buffer.concat(parts);
    } else {
      const n = cl.length ? Number(cl[0]) : 0;
      if (!/^\d+$/.test(cl[0] ?? '0')) return { requests, used: at, error: `content-length ${cl[0]}` };
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    }
    requests.push({ head, body });
    at = p;
  }
  return { requests, used: at };
}

/** An upstream that records the raw bytes of each connection and answers each request it frames with 200. */
async function recordingUpstream() {
  const conns = new Map<net.Socket, { all: Buffer; answered: number }>();
  const server = net.createServer((s) => {
    const c = { all: Buffer.alloc(0), answered: 0 };
    conns.set(s, c);
    s.on('error', () => {});
    s.on('data', (d) => {
      c.all = Buffer.concat([c.all, d]);
      const { requests } = frameRequests(c.all);
      for (; c.answered < requests.length; c.answered++) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  const port = await listen(server);
  return {
    port,
    /** Forgets what was received so far: each case is judged on its own bytes. */
    reset: () => {
      for (const c of conns.values()) c.all = Buffer.alloc(0);
      for (const c of conns.values()) c.answered = 0;
    },
    received: () => [...conns.values()].map((c) => c.all).filter((b) => b.length > 0),
    close: () => closeServer(server),
  };
}

/** Sends raw bytes; resolves with what came back, when the proxy closes or 300 ms after its last bytes. */
function exchange(port: number, bytes: string): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let quiet: NodeJS.Timeout = setTimeout(() => s.destroy(), 1500);
    let closed = false;
    s.on('data', (d) => {
      text += d.toString('latin1');
      clearTimeout(quiet);
      quiet = setTimeout(() => s.destroy(), 300);
    });
    s.on('end', () => (closed = true));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(quiet);
      resolve({ text, closed });
    });
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

/** How many requests Node's own parser (llhttp) finds in `bytes`, and their body lengths. */
async function llhttpCount(bytes: Buffer): Promise<{ bodies: number[]; error: boolean }> {
  const bodies: number[] = [];
  let error = false;
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      bodies.push(n);
      res.end();
    });
  });
  server.on('clientError', (_e, s) => {
    error = true;
    s.destroy();
  });
  const port = await listen(server);
  await new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(bytes));
    s.on('data', () => {});
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  await closeServer(server);
  return { bodies, error };
}

const H = 'POST / HTTP/1.1\r\nhost: up\r\n';
/** A request hidden in a body: if the upstream ever frames it as a request, the smuggling worked. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nhost: up\r\n\r\n';

/**
 * [name, bytes, requests]: each must be refused with 400, or forwarded as exactly `requests` requests
 * (1 unless said), or (not HTTP to protocol detection) passed through as opaque TCP byte for byte.
 */
const CORPUS: [string, string, number?][] = [
  ['CL.TE', `${H}content-length: 6\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nX`],
  ['TE.CL', `${H}transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`],
  ['TE.TE xchunked', `${H}transfer-encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE.TE leading space (value " chunked")', `${H}transfer-encoding:  chunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE chunked, identity', `${H}transfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE.TE identity, chunked', `${H}transfer-encoding: identity, chunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE tab before the value', `${H}transfer-encoding:\tchunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE vertical tab before the value', `${H}transfer-encoding:\x0bchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['TE.TE form feed after the value', `${H}transfer-encoding: chunked\x0c\r\n\r\n0\r\n\r\n`],
  ['TE.TE no-break space after the value', `${H}transfer-encoding: chunked\xa0\r\n\r\n0\r\n\r\n`],
  ['TE.TE space before the colon', `${H}transfer-encoding : chunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE duplicated, chunked twice', `${H}transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE duplicated, chunked then x', `${H}transfer-encoding: chunked\r\ntransfer-encoding: x\r\n\r\n0\r\n\r\n`],
  ['TE.TE upper case CHUNKED', `${H}transfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n`],
  ['TE.TE in a folded line', `${H}x-a: 1\r\n transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nabc`],
  ['TE.TE folded value', `${H}transfer-encoding:\r\n chunked\r\n\r\n0\r\n\r\n`],
  ['TE.TE quoted', `${H}transfer-encoding: "chunked"\r\n\r\n0\r\n\r\n`],
  ['TE gzip, chunked', `${H}transfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
  ['duplicate content-length, equal', `${H}content-length: 3\r\ncontent-length: 3\r\n\r\nabc`],
  ['duplicate content-length, different', `${H}content-length: 3\r\ncontent-length: 40\r\n\r\nabc${SMUGGLED}`],
  ['content-length "5, 5"', `${H}content-length: 5, 5\r\n\r\nabcde`],
  ['content-length with a plus', `${H}content-length: +3\r\n\r\nabc`],
  ['content-length hexadecimal', `${H}content-length: 0x3\r\n\r\nabc`],
  ['content-length with a no-break space', `${H}content-length: 3\xa0\r\n\r\nabc`],
  ['content-length with a vertical tab', `${H}content-length:\x0b3\r\n\r\nabc`],
  ['content-length overflow', `${H}content-length: 99999999999999999999999\r\n\r\nabc`],
  ['content-length empty', `${H}content-length: \r\n\r\n`],
  ['both CL and TE (TE first)', `${H}transfer-encoding: chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n`],
  ['HTTP/1.0 with transfer-encoding', `POST / HTTP/1.0\r\nhost: up\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['bare LF line endings', `POST / HTTP/1.1\nhost: up\ncontent-length: 3\n\nabc\r\n\r\n`],
  ['bare LF inside the head', `${H}x-a: 1\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nabc`],
  ['bare CR inside a value', `${H}x-a: 1\rtransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\nabc`],
  ['bare LF in the request line', `POST /\n HTTP/1.1\r\nhost: up\r\n\r\n`],
  ['NUL in a header name', `${H}x\x00a: 1\r\n\r\n`],
  ['NUL in a header value', `${H}x-a: 1\x00\r\n\r\n`],
  ['NUL in the target', `POST /\x00 HTTP/1.1\r\nhost: up\r\n\r\n`],
  ['escape character in a value', `${H}x-a: 1\x1b[2J\r\n\r\n`],
  ['DEL in a header name', `${H}x-a\x7f: 1\r\n\r\n`],
  ['obs-fold', `${H}x-a: 1\r\n\t2\r\n\r\n`],
  ['chunk extension with a bare LF', `${H}transfer-encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n`],
  [
    'chunk extension with a quoted CRLF',
    `${H}transfer-encoding: chunked\r\n\r\n3;a="\r\n0\r\n\r\n"\r\nabc\r\n0\r\n\r\n`,
  ],
  ['chunk extension without a name', `${H}transfer-encoding: chunked\r\n\r\n3;\r\nabc\r\n0\r\n\r\n`],
  ['chunk extension with a space in a token', `${H}transfer-encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n`],
  ['chunk extension, valid', `${H}transfer-encoding: chunked\r\n\r\n3;a=b;c="d;e"\r\nabc\r\n0\r\n\r\n`],
  ['chunk size with 17 hex digits', `${H}transfer-encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n`],
  ['chunk size overflowing 64 bits', `${H}transfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n`],
  ['chunk size with zero padding', `${H}transfer-encoding: chunked\r\n\r\n0000000000000000003\r\nabc\r\n0\r\n\r\n`],
  ['chunk size with leading space', `${H}transfer-encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n`],
  ['chunk size with trailing space', `${H}transfer-encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n`],
  ['chunk size with 0x prefix', `${H}transfer-encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n`],
  ['chunk size with trailing garbage', `${H}transfer-encoding: chunked\r\n\r\n3g\r\nabc\r\n0\r\n\r\n`],
  ['chunk size negative', `${H}transfer-encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n`],
  ['chunk size line with a bare LF', `${H}transfer-encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`],
  ['chunk data followed by a bare LF', `${H}transfer-encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n`],
  ['a pipelined request after the last chunk', `${H}transfer-encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 2],
  ['trailer with a bare LF', `${H}transfer-encoding: chunked\r\n\r\n0\r\nx: 1\n\r\n\r\n`],
  ['trailer with content-length', `${H}transfer-encoding: chunked\r\n\r\n0\r\ncontent-length: 30\r\n\r\n`],
  ['two host headers', `POST / HTTP/1.1\r\nhost: up\r\nhost: other\r\ncontent-length: 0\r\n\r\n`],
  ['space in the target', `POST /a b HTTP/1.1\r\nhost: up\r\n\r\n`],
  ['tab separating the request line', `POST\t/ HTTP/1.1\r\nhost: up\r\n\r\n`],
  ['lower-case version', `POST / http/1.1\r\nhost: up\r\n\r\n`],
  ['connection names content-length', `${H}connection: content-length\r\ncontent-length: 3\r\n\r\nabc`],
  [
    'connection names transfer-encoding',
    `${H}connection: transfer-encoding\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
  ],
];

void test('smuggling corpus: each request is refused with 400 or reaches the upstream as one request', async (t) => {
  const up = await recordingUpstream();
  const proxy = await startTestProxy(`127.0.0.1:${up.port}`);
  t.after(async () => {
    await proxy.close();
    await up.close();
  });
  const outcomes: string[] = [];
  let refused = 0;
  let forwarded = 0;
  const failures: string[] = [];
  let opaque = 0;
  for (const [name, bytes, requests] of CORPUS) {
    try {
      const outcome = await runCase(name, bytes, requests ?? 1);
      if (outcome === 'refused') refused++;
      else if (outcome === 'opaque') opaque++;
      else forwarded++;
      outcomes.push(`${outcome.padEnd(9)} ${name}`);
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  t.diagnostic(
    `${CORPUS.length} cases: ${refused} refused with 400, ${forwarded} forwarded unambiguously, ${opaque} passed as opaque TCP`,
  );
  for (const o of outcomes) t.diagnostic(o);
  assert.deepEqual(failures, []);

  async function runCase(name: string, bytes: string, requests: number): Promise<'refused' | 'forwarded' | 'opaque'> {
    up.reset();
    const { text, closed } = await exchange(proxy.outbound.port, bytes);
    const received = up.received();
    if (/^HTTP\/1\.1 400 /.test(text)) {
      assert.ok(closed, `${name}: a 400 closes the connection`);
      assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, `${name}: one answer only`);
      assert.deepEqual(received, [], `${name}: refused, and nothing reached the upstream`);
      return 'refused';
    }
    // Forwarded: the upstream's bytes hold exactly the requests sent, each framed one way.
    assert.equal(received.length, 1, `${name}: one upstream connection got bytes`);
    const bytesUp = received[0] as Buffer;
    // Not HTTP to detection (RFC 9112 section 3: one SP after the method): a byte-for-byte TCP tunnel.
    if (bytesUp.equals(Buffer.from(bytes, 'latin1')) && !/^[A-Z]+ /.test(bytes)) return 'opaque';
    assert.match(text, /^HTTP\/1\.1 200 /, `${name}: ${JSON.stringify(text.slice(0, 80))}`);
    const framed = frameRequests(bytesUp);
    assert.equal(framed.error, undefined, `${name}: ${framed.error} in ${JSON.stringify(bytesUp.toString('latin1'))}`);
    assert.equal(framed.requests.length, requests, `${name}: requests upstream`);
    assert.equal(framed.used, bytesUp.length, `${name}: nothing after the requests`);
    if (requests === 1) assert.doesNotMatch(bytesUp.toString('latin1'), /smuggled/i, name);
    // Node's own parser reads the same bytes as one request with the same body.
    const ll = await llhttpCount(bytesUp);
    assert.equal(ll.error, false, `${name}: llhttp refuses what the proxy sent`);
    assert.deepEqual(
      ll.bodies,
      framed.requests.map((r) => r.body.length),
      `${name}: llhttp frames it the same`,
    );
    return 'forwarded';
  }
});

/** A raw HTTP/2 request: HPACK literals without indexing (RFC 7541 section 6.2.2), then DATA frames. */
function h2Request(headers: [string, string][], data: string[]): Buffer {
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const block = Buffer.concat(
    headers.flatMap(([n, v]) => [Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)]),
  );
  const parts = [
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
    frame(4, 0, 0, Buffer.alloc(0)),
    frame(1, data.length ? 4 : 5, 1, block),
  ];
  data.forEach((d, i) => parts.push(frame(0, i === data.length - 1 ? 1 : 0, 1, Buffer.from(d))));
  return Buffer.concat(parts);
}

/** Sends raw h2 bytes; collects the frame types the proxy sent back until it closes or goes quiet. */
function h2Exchange(port: number, bytes: Buffer): Promise<{ status?: string; reset: boolean; goaway: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let reset = false;
    let goaway = false;
    let status: string | undefined;
    const timer = setTimeout(() => s.destroy(), 1500);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3];
        if (type === 3) reset = true;
        if (type === 7) goaway = true;
        // A first HEADERS answer starts with an indexed :status (RFC 7541 appendix A: 8 is 200, 13 is 400...).
        if (type === 1 && status === undefined) status = String(buf[9]);
        buf = buf.subarray(9 + len);
      }
      if (reset || goaway || status !== undefined) setTimeout(() => s.destroy(), 100);
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ status, reset, goaway });
    });
    s.write(bytes);
  });
}

void test('HTTP/2 requests with connection-specific fields are refused or stripped (RFC 9113 section 8.2.2)', async (t) => {
  const got: { headers: http2.IncomingHttpHeaders; body: number }[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    let n = 0;
    stream.on('data', (d: Buffer) => (n += d.length));
    stream.on('end', () => {
      got.push({ headers, body: n });
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const base: [string, string][] = [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'up'],
  ];
  const cases: [string, [string, string][], string[]][] = [
    ['transfer-encoding', [['transfer-encoding', 'chunked']], ['0\r\n\r\n']],
    ['connection', [['connection', 'close']], ['abc']],
    ['keep-alive', [['keep-alive', 'timeout=5']], ['abc']],
    ['upgrade', [['upgrade', 'websocket']], ['abc']],
    ['proxy-connection', [['proxy-connection', 'keep-alive']], ['abc']],
    ['te: gzip', [['te', 'gzip']], ['abc']],
    ['content-length larger than the data', [['content-length', '10']], ['abc']],
    ['content-length smaller than the data', [['content-length', '1']], ['abc', 'def']],
    ['upper-case header name', [['Content-Length', '3']], ['abc']],
  ];
  let refused = 0;
  let stripped = 0;
  for (const [name, extra, data] of cases) {
    got.length = 0;
    const r = await h2Exchange(proxy.outbound.port, h2Request([...base, ...extra], data));
    await new Promise((res) => setTimeout(res, 50));
    if (got.length === 0) {
      assert.ok(r.reset || r.goaway || r.status !== '136', `${name}: refused (${JSON.stringify(r)})`);
      refused++;
      t.diagnostic(`refused  ${name}`);
      continue;
    }
    // Forwarded: none of the connection-specific fields got through, and the body is what was framed.
    assert.equal(got.length, 1, name);
    const h = got[0]?.headers ?? {};
    for (const f of ['transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'proxy-connection'])
      assert.equal(h[f], undefined, `${name}: ${f} stripped`);
    assert.ok(h.te === undefined || h.te === 'trailers', `${name}: te`);
    if (h['content-length'] !== undefined) assert.equal(Number(h['content-length']), got[0]?.body, name);
    stripped++;
    t.diagnostic(`stripped ${name}`);
  }
  // A good request still goes through the same proxy.
  got.length = 0;
  const ok = await h2Exchange(proxy.outbound.port, h2Request([...base, ['content-length', '3']], ['abc']));
  assert.equal(ok.status, '136', 'a 200 answer (indexed :status 200 is 0x88)');
  assert.equal(got.length, 1);
  t.diagnostic(`${cases.length} HTTP/2 cases: ${refused} refused, ${stripped} forwarded without the fields`);
});
