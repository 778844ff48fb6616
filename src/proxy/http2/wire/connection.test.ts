// H2Connection against node:http2 (nghttp2) on loopback, both roles: concurrent streams, large bodies both
// ways under 16 kB windows (checked by sha256), trailers, 1xx, resets both ways, GOAWAY drain, PING.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { execFileSync } from 'node:child_process';
import tls from 'node:tls';
import { H2ErrorCode } from './errors.js';
import { H2Connection } from './connection.js';
import { CollectHandler, connect, EchoHandler, headers, pattern, serve, sha256 } from './testkit.js';

const SMALL = { streamWindow: 16384, connectionWindow: 65535 };

function nodeRequest(
  client: http2.ClientHttp2Session,
  path: string,
  body?: Buffer,
  method = 'GET',
): Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':path': path, ':method': method }, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    let hdrs: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      hdrs = h;
      status = Number(h[':status']);
    });
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks), trailers, headers: hdrs }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

void test('server role, node:http2 client: 200 concurrent streams, each a 1 kB response', async () => {
  const srv = await serve({ maxConcurrentStreams: 1000 });
  const client = http2.connect(`http://127.0.0.1:${srv.port}`);
  const results = await Promise.all(Array.from({ length: 200 }, () => nodeRequest(client, '/')));
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 1024);
  }
  client.close();
  await srv.handlers[0]?.closed;
  await srv.close();
});

void test('server role, node:http2 client: 3 MB bodies both ways under 16 kB windows, sha256 checked', async () => {
  const srv = await serve(SMALL);
  const client = http2.connect(`http://127.0.0.1:${srv.port}`, { settings: { initialWindowSize: 16384 } });
  const body = pattern(3 << 20, 3);
  const [echo, big] = await Promise.all([
    nodeRequest(client, '/echo', body, 'POST'),
    nodeRequest(client, `/size/${3 << 20}`),
  ]);
  assert.equal(echo.status, 200);
  assert.equal(sha256(echo.body), sha256(body));
  assert.equal(sha256(big.body), sha256(pattern(3 << 20)));
  // Upload with trailers back: the server hashes what it got.
  const t = await nodeRequest(client, '/trailers', body, 'POST');
  assert.equal(t.trailers['x-sha256'], sha256(body));
  client.close();
  await srv.close();
});

void test('server role, node:http2 client: 103 before 200, a stream reset by the server, one by the client', async () => {
  const srv = await serve();
  const client = http2.connect(`http://127.0.0.1:${srv.port}`);
  const info = await new Promise<number[]>((resolve, reject) => {
    const codes: number[] = [];
    const req = client.request({ ':path': '/info' });
    req.on('headers', (h) => codes.push(Number(h[':status'])));
    req.on('response', (h) => codes.push(Number(h[':status'])));
    req.on('data', () => {});
    req.on('end', () => resolve(codes));
    req.on('error', reject);
  });
  assert.deepEqual(info, [103, 200]);
  const code = await new Promise<number>((resolve) => {
    const req = client.request({ ':path': '/reset' });
    req.on('close', () => resolve(req.rstCode));
    req.on('error', () => {});
    req.resume();
  });
  assert.equal(code, H2ErrorCode.CANCEL);
  // The client resets a stream the server never answers: the server's handler hears it.
  const req = client.request({ ':path': '/hang' });
  req.on('error', () => {});
  await new Promise((r) => setTimeout(r, 50));
  req.close(http2.constants.NGHTTP2_CANCEL);
  const h = srv.handlers[0]!;
  for (let i = 0; i < 100 && h.resets.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(h.resets, [H2ErrorCode.CANCEL]);
  assert.equal(srv.conns[0]?.stats.resetsReceived[H2ErrorCode.CANCEL], 1);
  assert.equal(srv.conns[0]?.stats.resetsSent[H2ErrorCode.CANCEL], 1);
  client.close();
  await srv.close();
});

void test('server role: GOAWAY drains; the stream in flight finishes, the connection then ends', async () => {
  const srv = await serve();
  const client = http2.connect(`http://127.0.0.1:${srv.port}`);
  const goaway = once(client, 'goaway');
  const inflight = nodeRequest(client, '/echo', undefined, 'POST');
  await new Promise((r) => setTimeout(r, 100));
  srv.conns[0]!.goaway();
  const [code, last] = (await goaway) as [number, number];
  assert.equal(code, 0);
  assert.equal(last, 1);
  const r = await inflight; // finished after the GOAWAY: the echo of an empty body
  assert.equal(r.status, 200);
  assert.equal(await srv.handlers[0]?.closed, undefined);
  await srv.close();
});

/** A node:http2 server for our client: echo on /echo, trailers on /trailers, a body of N on /size/N. */
async function nodeServer(settings: http2.Settings = {}) {
  const server = http2.createServer({ settings });
  server.on('stream', (stream, h) => {
    const path = String(h[':path']);
    stream.on('error', () => {});
    if (path === '/echo') {
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
      return;
    }
    if (path === '/hang') return;
    if (path === '/trailers') {
      const hash = new Map<string, number>();
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        hash.set('n', 0);
        stream.respond({ ':status': 200 }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-sha256': sha256(Buffer.concat(chunks)) }));
        stream.end('ok');
      });
      return;
    }
    if (path === '/info') {
      stream.additionalHeaders({ ':status': 103 });
      stream.respond({ ':status': 200 });
      stream.end('x');
      return;
    }
    const m = /^\/size\/(\d+)$/.exec(path);
    stream.respond({ ':status': 200 });
    stream.end(m ? pattern(Number(m[1])) : Buffer.alloc(1024));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

void test('client role, node:http2 server: 300 streams over a limit of 100, then bodies both ways under 16 kB windows', async () => {
  const { server, port } = await nodeServer({ maxConcurrentStreams: 100, initialWindowSize: 16384 });
  const { conn, h } = await connect(port, SMALL);
  assert.equal(conn.peerSettings.maxConcurrentStreams, 100);
  // Open as many as the server allows; the connection reports when it is full.
  const pending = [];
  let opened = 0;
  while (!conn.full) {
    pending.push(h.request({ ':method': 'GET', ':path': '/', ':scheme': 'http', ':authority': 'x' }));
    opened++;
  }
  assert.equal(opened, 100);
  assert.equal(conn.request(headers({ ':method': 'GET', ':path': '/' }), true), null);
  const all = await Promise.all(pending);
  assert.ok(h.capacity >= 1);
  for (const r of all) assert.equal(r.bodyBytes().length, 1024);
  // 200 more in waves as capacity comes back.
  for (let wave = 0; wave < 2; wave++) {
    const rs = await Promise.all(
      Array.from({ length: 100 }, () =>
        h.request({ ':method': 'GET', ':path': '/size/5000', ':scheme': 'http', ':authority': 'x' }),
      ),
    );
    for (const r of rs) assert.equal(sha256(r.bodyBytes()), sha256(pattern(5000)));
  }
  const body = pattern(2 << 20, 9);
  const req = { ':method': 'POST', ':scheme': 'http', ':authority': 'x' };
  const [echo, big] = await Promise.all([
    h.request({ ...req, ':path': '/echo' }, body, 10000),
    h.request({ ...req, ':method': 'GET', ':path': `/size/${2 << 20}` }),
  ]);
  assert.equal(sha256(echo.bodyBytes()), sha256(body));
  assert.equal(sha256(big.bodyBytes()), sha256(pattern(2 << 20)));
  const t = await h.request({ ...req, ':path': '/trailers' }, body, 30000);
  assert.equal(t.trailers?.['x-sha256'], sha256(body));
  const info = await h.request({ ...req, ':method': 'GET', ':path': '/info' });
  assert.equal(info.informational[0]?.[':status'], '103');
  assert.equal(info.status, '200');
  // PING round trip.
  assert.equal(conn.ping(), true);
  assert.equal(conn.ping(), false); // one at a time
  for (let i = 0; i < 100 && h.pings.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.pings.length, 1);
  assert.ok(conn.stats.rttMs >= 0);
  assert.ok(conn.stats.framesOut / conn.stats.writes > 1, 'frames are batched into writes');
  conn.goaway();
  assert.equal(await h.closed, undefined);
  server.close();
});

void test('client role, node:http2 server: resets both ways', async () => {
  const { server, port } = await nodeServer();
  const { conn, h } = await connect(port);
  const req = { ':method': 'GET', ':scheme': 'http', ':authority': 'x' };
  const hang = h.request({ ...req, ':path': '/hang' });
  await new Promise((r) => setTimeout(r, 50));
  // The server resets the stream: node closes a stream with a code.
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (s) => sessions.push(s));
  const serverStreams: http2.ServerHttp2Stream[] = [];
  server.on('stream', (s) => serverStreams.push(s));
  const hang2 = h.request({ ...req, ':path': '/hang' });
  for (let i = 0; i < 100 && serverStreams.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  serverStreams[0]?.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  assert.equal((await hang2).reset, H2ErrorCode.REFUSED_STREAM);
  // We reset one: the server sees its stream aborted.
  const ex = await Promise.race([hang, new Promise((r) => setTimeout(r, 10, null))]);
  assert.equal(ex, null);
  const first = [...(conn as unknown as { streams: Map<number, import('./stream.js').H2Stream> }).streams.values()][0]!;
  conn.reset(first, H2ErrorCode.CANCEL);
  assert.equal(conn.streamCount, 0);
  assert.equal(conn.stats.resetsSent[H2ErrorCode.CANCEL], 1);
  conn.close();
  await h.closed;
  server.close();
});

void test('client role: keep-alive pings are answered; GOAWAY from the server refuses our streams above its last id', async () => {
  const { server, port } = await nodeServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (s) => sessions.push(s));
  const { conn, h } = await connect(port, { keepAliveMs: 100 });
  for (let i = 0; i < 300 && h.pings.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(h.pings.length >= 1, 'a keep-alive ping came back');
  const req = { ':method': 'GET', ':scheme': 'http', ':authority': 'x', ':path': '/hang' };
  const ex = [h.request(req), h.request(req), h.request(req)];
  await new Promise((r) => setTimeout(r, 100));
  sessions[0]!.goaway(0, 1);
  const [, second, third] = [await Promise.race([ex[0], null]), await ex[1], await ex[2]];
  assert.equal(second?.reset, H2ErrorCode.REFUSED_STREAM);
  assert.equal(third?.reset, H2ErrorCode.REFUSED_STREAM);
  assert.deepEqual(h.goaways, [[1, 0]]);
  assert.equal(conn.full, true);
  assert.equal(conn.request(headers(req), true), null);
  assert.equal(conn.streamCount, 1); // stream 1 is still the server's to finish
  conn.close();
  await h.closed;
  server.close();
});

void test('over TLS (ALPN h2): node:http2 client to our server role, and our client role to it', async () => {
  // A throwaway self-signed certificate, kept in memory only.
  // (Through a pipe: node's stdio is a socket, which /dev/stdout cannot be opened on.)
  const openssl =
    'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost ' +
    '-addext subjectAltName=DNS:localhost -keyout /dev/stdout -out /dev/stdout | cat';
  const pem = execFileSync('sh', ['-c', openssl], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const key = /-----BEGIN PRIVATE KEY-----[^]*?-----END PRIVATE KEY-----/.exec(pem)?.[0] ?? '';
  const cert = /-----BEGIN CERTIFICATE-----[^]*?-----END CERTIFICATE-----/.exec(pem)?.[0] ?? '';
  const server = tls.createServer({ key, cert, ALPNProtocols: ['h2'] }, (socket) => {
    const h = new EchoHandler();
    h.conn = new H2Connection(socket, h, { role: 'server', streamWindow: 16384 });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const client = http2.connect(`https://localhost:${port}`, { ca: cert });
  const body = pattern(1 << 20, 4);
  const r = await nodeRequest(client, '/echo', body, 'POST');
  assert.equal(sha256(r.body), sha256(body));
  client.close();
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: cert, ALPNProtocols: ['h2'] });
  await once(socket, 'secureConnect');
  assert.equal(socket.alpnProtocol, 'h2');
  const h = new CollectHandler();
  const conn = new H2Connection(socket, h, { role: 'client', streamWindow: 16384 });
  h.conn = conn;
  await h.ready;
  const req = { ':method': 'POST', ':scheme': 'https', ':authority': 'localhost', ':path': '/echo' };
  const ex = await h.request(req, body, 20000);
  assert.equal(sha256(ex.bodyBytes()), sha256(body));
  conn.goaway();
  await h.closed;
  server.close();
});

void test('ours to ours: trailers wait behind DATA queued on a small window; header tables of 0 both ways', async () => {
  // A table of 0 on our side: nghttp2 and we must open the next block with a size update once the
  // SETTINGS are acknowledged (RFC 7541 section 4.2), and nothing may be indexed after it.
  const srv = await serve({ streamWindow: 16384, connectionWindow: 65535, headerTableSize: 0 });
  const client = http2.connect(`http://127.0.0.1:${srv.port}`);
  for (let i = 0; i < 20; i++) {
    const r = await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':path': '/', 'x-repeat': 'same value each time', 'x-i': String(i) });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
    });
    assert.equal(r, 200);
  }
  client.close();
  const { conn, h } = await connect(srv.port, { streamWindow: 16384, connectionWindow: 65535, headerTableSize: 0 });
  const body = pattern(500_000, 17);
  const req = { ':method': 'POST', ':scheme': 'http', ':authority': 'x', ':path': '/trailers' };
  const ex = await h.request(req, body, 100_000, headers({ 'x-client-trailer': 'yes' }));
  assert.equal(ex.trailers?.['x-sha256'], sha256(body));
  assert.equal(ex.trailers?.['x-bytes'], String(body.length));
  assert.equal(ex.bodyBytes().toString(), 'ok');
  conn.goaway();
  await h.closed;
  await srv.close();
});
