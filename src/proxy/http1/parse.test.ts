import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProxyError } from '../errors/errors.js';
import { ChunkedScanner, parseRequestHead, parseResponseHead } from './parse.js';

const req = (lines: string[]) => parseRequestHead(lines.join('\r\n'));
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as ProxyError).code;
  }
  return 'no error';
};

void test('request head: framing, keep-alive and hop-by-hop fields', () => {
  const h = req([
    'POST /a?b=1 HTTP/1.1',
    'Host: web:8080',
    'Connection: keep-alive, X-Secret',
    'X-Secret: 1',
    'Keep-Alive: timeout=5',
    'TE: trailers',
    'Content-Length: 5',
    'X-Ok: yes',
  ]);
  assert.equal(h.method, 'POST');
  assert.equal(h.target, '/a?b=1');
  assert.equal(h.authority, 'web:8080');
  assert.equal(h.bodyKind, 'length');
  assert.equal(h.contentLength, 5);
  assert.equal(h.keepAlive, true);
  assert.deepEqual(h.fields, ['Host', 'web:8080', 'Content-Length', '5', 'X-Ok', 'yes']);
  const c = req(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked', 'Connection: close']);
  assert.equal(c.bodyKind, 'chunked');
  assert.equal(c.keepAlive, false);
  assert.deepEqual(c.fields, ['Host', 'a', 'transfer-encoding', 'chunked']);
});

void test('request head: HTTP/1.0 keeps alive only when asked; upgrade and expect are seen', () => {
  assert.equal(req(['GET / HTTP/1.0']).keepAlive, false);
  assert.equal(req(['GET / HTTP/1.0', 'Connection: Keep-Alive']).keepAlive, true);
  const u = req(['GET /ws HTTP/1.1', 'Host: a', 'Connection: Upgrade', 'Upgrade: websocket']);
  assert.equal(u.upgrade, 'websocket');
  assert.equal(req(['GET /ws HTTP/1.1', 'Host: a', 'Upgrade: websocket']).upgrade, undefined);
  assert.equal(req(['PUT / HTTP/1.1', 'Host: a', 'Expect: 100-continue', 'Content-Length: 1']).expectContinue, true);
  assert.equal(req(['CONNECT db:5432 HTTP/1.1', 'Host: db:5432']).authority, 'db:5432');
  assert.equal(req(['GET http://other:81/x HTTP/1.1', 'Host: a']).authority, 'other:81');
});

void test('request head: malformed input is refused with 400-class codes', () => {
  const bad = [
    ['GET  / HTTP/1.1', 'Host: a'],
    ['GET / HTTP/1.1 x', 'Host: a'],
    ['G(T / HTTP/1.1', 'Host: a'],
    ['GET /\x01 HTTP/1.1', 'Host: a'],
    ['GET / HTTQ/1.1', 'Host: a'],
    ['GET / HTTP/1.1'], // no Host
    ['GET / HTTP/1.1', 'Host: a', 'Host: b'],
    ['GET / HTTP/1.1', 'Host: a', ' folded'],
    ['GET / HTTP/1.1', 'Host: a', 'Bad Name: x'],
    ['GET / HTTP/1.1', 'Host: a', 'X: a\x00b'],
    ['GET / HTTP/1.1', 'Host: a', 'Content-Length: 1x'],
    ['GET / HTTP/1.1', 'Host: a', 'Content-Length: 1', 'Content-Length: 2'],
    ['POST / HTTP/1.1', 'Host: a', 'Content-Length: 1', 'Transfer-Encoding: chunked'],
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip'],
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked, chunked'],
    ['POST / HTTP/1.0', 'Transfer-Encoding: chunked'],
    ['GET relative HTTP/1.1', 'Host: a'],
  ];
  for (const lines of bad)
    assert.equal(
      code(() => req(lines)),
      'OUTR_ERR_MALFORMED_REQUEST',
      JSON.stringify(lines),
    );
  assert.equal(
    code(() => req(['GET / HTTP/2.0', 'Host: a'])),
    'OUTR_ERR_VERSION_NOT_SUPPORTED',
  );
  // Repeated identical content-length values are allowed (RFC 9110 section 8.6).
  assert.equal(req(['POST / HTTP/1.1', 'Host: a', 'Content-Length: 3', 'Content-Length: 3']).contentLength, 3);
});

void test('response head: body framing follows the request method and status', () => {
  const r = (lines: string[], method = 'GET') => parseResponseHead(lines.join('\r\n'), method);
  assert.equal(r(['HTTP/1.1 200 OK', 'Content-Length: 10']).bodyKind, 'length');
  assert.equal(r(['HTTP/1.1 200 OK', 'Content-Length: 10'], 'HEAD').bodyKind, 'none');
  assert.equal(r(['HTTP/1.1 204 No Content']).bodyKind, 'none');
  assert.equal(r(['HTTP/1.1 304 Not Modified', 'Content-Length: 10']).bodyKind, 'none');
  assert.equal(r(['HTTP/1.1 200 OK']).bodyKind, 'eof');
  assert.equal(r(['HTTP/1.1 200 OK', 'Transfer-Encoding: chunked']).bodyKind, 'chunked');
  assert.equal(r(['HTTP/1.1 200 Connection established'], 'CONNECT').bodyKind, 'none');
  assert.equal(r(['HTTP/1.1 200']).reason, '');
  assert.equal(r(['HTTP/1.0 200 OK', 'Content-Length: 1']).keepAlive, false);
  assert.equal(
    code(() => r(['HTTP/1.1 2000 OK'])),
    'OUTR_ERR_UPSTREAM_PROTOCOL',
  );
  assert.equal(
    code(() => r(['SSH-2.0-OpenSSH'])),
    'OUTR_ERR_UPSTREAM_PROTOCOL',
  );
});

void test('chunked scanner: finds the end across any split, passes payload ranges, refuses bad sizes', () => {
  const body = '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT';
  for (let split = 1; split < body.length; split++) {
    const s = new ChunkedScanner((m) => new ProxyError('OUTR_ERR_MALFORMED_REQUEST', m));
    const parts = [Buffer.from(body.slice(0, split)), Buffer.from(body.slice(split))];
    let payload = '';
    const onData = (b: Buffer, a: number, e: number) => (payload += b.toString('latin1', a, e));
    const first = s.scan(parts[0] as Buffer, onData);
    let endAt: number;
    if (first !== -1) endAt = first;
    else endAt = split + s.scan(parts[1] as Buffer, onData);
    assert.equal(body.slice(endAt), 'NEXT', `split ${split}`);
    assert.equal(payload, 'hello world');
    assert.ok(s.done);
  }
  for (const bad of ['zz\r\n', '5\r\nhelloXX', '\r\n', '5\nhello', 'fffffffffffff\r\n']) {
    const s = new ChunkedScanner((m) => new ProxyError('OUTR_ERR_MALFORMED_REQUEST', m));
    assert.throws(() => s.scan(Buffer.from(bad)), ProxyError, bad);
  }
});

void test('smuggling rules: OWS is SP and HTAB only, codings are known, Connection cannot drop framing', () => {
  const bad = [
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:\x0bchunked'],
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: chunked\xa0'],
    ['POST / HTTP/1.1', 'Host: a', 'Content-Length: 3\xa0'],
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: identity, chunked'],
    ['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: x, chunked'],
    ['POST / HTTP/1.1', 'Host: a', 'Connection: content-length', 'Content-Length: 3'],
    ['POST / HTTP/1.1', 'Host: a', 'Connection: Host'],
    ['GET http://a>b:80/ HTTP/1.1', 'Host: a'],
    ['GET http://a"b/ HTTP/1.1', 'Host: a'],
    ['CONNECT /x HTTP/1.1', 'Host: a'],
  ];
  for (const lines of bad)
    assert.equal(
      code(() => req(lines)),
      'OUTR_ERR_MALFORMED_REQUEST',
      JSON.stringify(lines),
    );
  assert.equal(req(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding:\t chunked \t']).bodyKind, 'chunked');
  assert.equal(req(['POST / HTTP/1.1', 'Host: a', 'Transfer-Encoding: gzip, chunked']).bodyKind, 'chunked');
});

void test('chunked scanner: extensions follow their grammar, trailers are field lines without framing fields', () => {
  const scan = (body: string) => {
    const s = new ChunkedScanner((m) => new ProxyError('OUTR_ERR_MALFORMED_REQUEST', m));
    return s.scan(Buffer.from(body, 'latin1'));
  };
  const good = [
    '3;a\r\nabc\r\n0\r\n\r\n',
    '3;a=b;c="d;\\"e"\r\nabc\r\n0\r\n\r\n',
    '3;a="\xe9"\r\nabc\r\n0;last\r\nx-sum: 1\r\ny:\r\n\r\n',
  ];
  for (const g of good) assert.equal(scan(g), g.length, JSON.stringify(g));
  const bad = [
    '3 \r\nabc\r\n0\r\n\r\n',
    '3 ;a\r\nabc\r\n0\r\n\r\n',
    '3;a =b\r\nabc\r\n0\r\n\r\n',
    '3;\r\nabc\r\n0\r\n\r\n',
    '3;a b\r\nabc\r\n0\r\n\r\n',
    '3;a=\r\nabc\r\n0\r\n\r\n',
    '3;a="\r\n"\r\nabc\r\n0\r\n\r\n',
    '3;a=b c\r\nabc\r\n0\r\n\r\n',
    '3;a\x00\r\nabc\r\n0\r\n\r\n',
    '0\r\ncontent-length: 3\r\n\r\n',
    '0\r\nTransfer-Encoding: chunked\r\n\r\n',
    '0\r\nno colon\r\n\r\n',
    '0\r\nx: a\x01\r\n\r\n',
    '0\r\n y: folded\r\n\r\n',
  ];
  for (const b of bad) assert.throws(() => scan(b), ProxyError, JSON.stringify(b));
});
