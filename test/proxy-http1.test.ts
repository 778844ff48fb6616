// HTTP/1.x through the proxy with real sockets: keep-alive and pooling, chunked and streamed bodies,
// 100-continue, pipelining, HTTP/1.0, WebSocket and CONNECT tunnels, hop-by-hop headers, and the
// errors the proxy itself answers (502, 504).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import WebSocket, { WebSocketServer } from 'ws';
import { closeServer, listen, metricValue, rawExchange, startEchoServer, startTestProxy } from './helpers.js';
import { waitFor } from './basics.js';

function request(
  url: string,
  opts: http.RequestOptions = {},
  body?: Buffer | string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(body);
  });
}

void test('keep-alive both ways: many requests on one client connection reuse one upstream connection', async (t) => {
  const echo = await startEchoServer();
  let upstreamConns = 0;
  echo.server.on('connection', () => upstreamConns++);
  const proxy = await startTestProxy(`127.0.0.1:${echo.port}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(async () => {
    agent.destroy();
    await proxy.close();
    await echo.close();
  });
  for (let i = 0; i < 20; i++) {
    const r = await request(`${proxy.url}/n/${i}`, { agent });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body.toString()).url, `/n/${i}`);
  }
  assert.equal(upstreamConns, 1, 'one pooled upstream connection');
  assert.equal(await metricValue(proxy, 'tcp_open_total', { direction: 'outbound' }), 1, 'one client connection');
  assert.equal(await metricValue(proxy, 'request_total'), 20);
  assert.equal(await metricValue(proxy, 'response_total', { status_code: '200', classification: 'success' }), 20);
  assert.equal(await metricValue(proxy, 'response_latency_ms_count'), 20);
});

void test('hop-by-hop headers are not forwarded; end-to-end ones are', async (t) => {
  const echo = await startEchoServer();
  const proxy = await startTestProxy(`127.0.0.1:${echo.port}`);
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  const r = await request(`${proxy.url}/h`, {
    headers: {
      connection: 'keep-alive, x-private',
      'x-private': 'secret',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-connection': 'x',
      'x-end-to-end': 'kept',
    },
  });
  const h = JSON.parse(r.body.toString()).headers as Record<string, string>;
  assert.equal(h['x-end-to-end'], 'kept');
  assert.equal(h['x-private'], undefined);
  assert.equal(h['keep-alive'], undefined);
  assert.equal(h['te'], undefined);
  assert.equal(h['proxy-connection'], undefined);
});

void test('chunked request and response bodies, and large bodies streamed both ways intact', async (t) => {
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      hash.update(d);
    });
    req.on('end', () => {
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
      res.writeHead(200, { 'x-request-sha256': hash.digest('hex'), 'x-request-bytes': String(n) });
      // Chunked response of `size` bytes, written in 64 KiB pieces with backpressure.
      const piece = Buffer.alloc(65536, 7);
      let left = size;
      const write = () => {
        while (left > 0) {
          const b = piece.subarray(0, Math.min(left, piece.length));
          left -= b.length;
          if (!res.write(b)) return void res.once('drain', write);
        }
        res.end();
      };
      write();
    });
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const size = 32 * 1024 * 1024;
  const upload = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) upload[i] = i & 0xff;
  // Chunked upload (no content-length) of 32 MiB, and a 32 MiB chunked download.
  const res = await new Promise<{ headers: http.IncomingHttpHeaders; bytes: number; sha: string }>(
    (resolve, reject) => {
      const r = http.request(`${proxy.url}/up?size=${size}`, { method: 'POST' }, (resp) => {
        const h = createHash('sha256');
        let n = 0;
        resp.on('data', (d: Buffer) => {
          n += d.length;
          h.update(d);
        });
        resp.on('end', () => resolve({ headers: resp.headers, bytes: n, sha: h.digest('hex') }));
      });
      r.on('error', reject);
      for (let i = 0; i < size; i += 1 << 20) r.write(upload.subarray(i, i + (1 << 20)));
      r.end();
    },
  );
  assert.equal(res.headers['x-request-bytes'], String(size));
  assert.equal(res.headers['x-request-sha256'], createHash('sha256').update(upload).digest('hex'));
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  assert.equal(res.bytes, size);
  assert.equal(res.sha, createHash('sha256').update(Buffer.alloc(size, 7)).digest('hex'));
});

void test('backpressure: a client that stops reading stops the upstream, the proxy does not buffer the body', async (t) => {
  let written = 0;
  let serverRes: http.ServerResponse | undefined;
  const server = http.createServer((_req, res) => {
    serverRes = res;
    res.writeHead(200, { 'content-length': String(512 * 1024 * 1024) });
    const piece = Buffer.alloc(65536, 1);
    const write = () => {
      while (written < 512 * 1024 * 1024) {
        written += piece.length;
        if (!res.write(piece)) return void res.once('drain', write);
      }
    };
    write();
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  const client = net.connect(proxy.outbound.port, '127.0.0.1');
  t.after(async () => {
    client.destroy();
    serverRes?.destroy();
    await proxy.close();
    await closeServer(server);
  });
  client.write('GET /big HTTP/1.1\r\nhost: x\r\n\r\n');
  await once(client, 'data');
  client.pause();
  // Give the stream every chance to run ahead, then check it did not: only socket buffers are in flight.
  let last = -1;
  while (last !== written) {
    last = written;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(written < 64 * 1024 * 1024, `upstream wrote ${written} bytes to a client that reads nothing`);
});

void test('100-continue is honoured: the body is sent only after the upstream says continue', async (t) => {
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(`got ${n}`));
  });
  let asked = 0;
  server.on('checkContinue', (req, res) => {
    asked++;
    res.writeContinue();
    server.emit('request', req, res);
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const body = Buffer.alloc(10000, 3);
  const result = await new Promise<string>((resolve, reject) => {
    const r = http.request(
      `${proxy.url}/c`,
      { method: 'PUT', headers: { expect: '100-continue', 'content-length': body.length } },
      (res) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      },
    );
    r.on('continue', () => r.end(body));
    r.on('error', reject);
  });
  assert.equal(result, 'got 10000');
  assert.equal(asked, 1);
});

void test('pipelined requests are answered in order on one connection', async (t) => {
  const server = http.createServer((req, res) => {
    // The first answer is the slowest: order must still hold.
    const delay = req.url === '/1' ? 100 : 0;
    setTimeout(() => res.end(`answer ${req.url}`), delay);
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const reqs = ['/1', '/2', '/3']
    .map((p, i) => `GET ${p} HTTP/1.1\r\nhost: x\r\n${i === 2 ? 'connection: close\r\n' : ''}\r\n`)
    .join('');
  const out = await rawExchange(proxy.outbound.port, reqs);
  const answers = [...out.matchAll(/answer (\/\d)/g)].map((m) => m[1]);
  assert.deepEqual(answers, ['/1', '/2', '/3']);
  assert.equal(out.match(/HTTP\/1\.1 200/g)?.length, 3);
});

void test('HTTP/1.0 clients: connection closes after the answer, a chunked upstream answer is de-chunked', async (t) => {
  const server = http.createServer((_req, res) => {
    res.write('part one, ');
    res.end('part two');
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const out = await rawExchange(proxy.outbound.port, 'GET /old HTTP/1.0\r\n\r\n');
  const [head, body] = out.split('\r\n\r\n');
  assert.match(head as string, /^HTTP\/1\.1 200/);
  assert.doesNotMatch(head as string, /transfer-encoding/i);
  assert.match(head as string, /connection: close/i);
  assert.equal(body, 'part one, part two');
  // Keep-alive 1.0 with a content-length answer stays open for a second request.
  const echo = await startEchoServer();
  const proxy2 = await startTestProxy(`127.0.0.1:${echo.port}`);
  t.after(async () => {
    await proxy2.close();
    await echo.close();
  });
  const two = await rawExchange(proxy2.outbound.port, [
    'GET /a HTTP/1.0\r\nconnection: keep-alive\r\n\r\n',
    'GET /b HTTP/1.0\r\n\r\n',
  ]);
  assert.equal(two.match(/HTTP\/1\.1 200/g)?.length, 2, two);
  assert.match(two, /connection: keep-alive/i);
});

void test('WebSocket upgrade becomes a byte tunnel: echo through the proxy', async (t) => {
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.outbound.port}/chat`);
  t.after(async () => {
    ws.terminate();
    wss.close();
    await proxy.close();
    await closeServer(server);
  });
  await once(ws, 'open');
  const got: string[] = [];
  ws.on('message', (m) => got.push(m.toString()));
  for (let i = 0; i < 50; i++) ws.send(`message ${i}`);
  const big = 'x'.repeat(1 << 20);
  ws.send(big);
  while (got.length < 51) await once(ws, 'message');
  assert.deepEqual(
    got.slice(0, 50),
    Array.from({ length: 50 }, (_, i) => `message ${i}`),
  );
  assert.equal(got[50], big);
  assert.equal(await metricValue(proxy, 'response_total', { status_code: '101' }), 1);
});

void test('CONNECT becomes a byte tunnel after the upstream accepts it', async (t) => {
  const server = http.createServer();
  server.on('connect', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  const s = net.connect(proxy.outbound.port, '127.0.0.1');
  t.after(async () => {
    s.destroy();
    await proxy.close();
    await closeServer(server);
  });
  s.write('CONNECT db.internal:5432 HTTP/1.1\r\nhost: db.internal:5432\r\n\r\n');
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  while (!got.includes('\r\n\r\n')) await once(s, 'data');
  assert.match(got, /^HTTP\/1\.1 200/);
  s.write('raw bytes \x00\x01 both ways');
  while (!got.endsWith('both ways')) await once(s, 'data');
  assert.ok(got.endsWith('raw bytes \x00\x01 both ways'));
});

void test('an upstream that refuses gets 502, one that is too slow 504, each naming the proxy', async (t) => {
  const dead = net.createServer();
  const deadPort = await listen(dead);
  await closeServer(dead); // nothing listens there now
  const p502 = await startTestProxy(`127.0.0.1:${deadPort}`);
  const slow = http.createServer((_req, res) => setTimeout(() => res.end('late'), 2000));
  const slowPort = await listen(slow);
  const p504 = await startTestProxy(`127.0.0.1:${slowPort}`, { responseTimeoutMs: '200' });
  t.after(async () => {
    await p502.close();
    await p504.close();
    await closeServer(slow);
  });
  const r1 = await request(`${p502.url}/`);
  assert.equal(r1.status, 502);
  assert.match(r1.body.toString(), /^outrigger proxy: upstream 127\.0\.0\.1:\d+: connect failed: ECONNREFUSED/);
  assert.match(String(r1.headers['outrigger-proxy-error']), /ECONNREFUSED/);
  const r2 = await request(`${p504.url}/`);
  assert.equal(r2.status, 504);
  assert.match(r2.body.toString(), /outrigger proxy: .*no response within 200ms/);
  assert.equal(await metricValue(p502, 'response_total', { status_code: '502', classification: 'failure' }), 1);
  assert.equal(await metricValue(p504, 'response_total', { status_code: '504', classification: 'failure' }), 1);
});

void test('an answer cut off after its head is counted a failure; a client that leaves mid-answer is counted too', async (t) => {
  // The upstream sends its head and 5 of 100 body bytes; then, for /die, it closes (a replica killed
  // mid-answer), and for /hold it waits (the client leaves).
  const held: net.Socket[] = [];
  const up = net.createServer((s) => {
    s.once('data', (d) => {
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello');
      if (d.toString('latin1').startsWith('GET /die ')) setTimeout(() => s.destroy(), 50);
      else held.push(s);
    });
    s.on('error', () => {});
  });
  const port = await listen(up);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    for (const s of held) s.destroy();
    await proxy.close();
    await closeServer(up);
  });
  const cut = await rawExchange(proxy.outbound.port, 'GET /die HTTP/1.1\r\nhost: up\r\n\r\n');
  assert.match(
    cut,
    /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhello$/,
    'the client got the head and the first bytes, then the close',
  );
  assert.equal(await metricValue(proxy, 'response_total', { status_code: '200', classification: 'failure' }), 1);
  assert.equal(await metricValue(proxy, 'response_total', { classification: 'success' }), 0);
  assert.equal(await metricValue(proxy, 'request_errors_total', { error: 'upstream_protocol' }), 1);

  // The client reads the head, then goes (a reset): the answer is counted (cancelled), not lost.
  const client = net.connect(proxy.outbound.port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /hold HTTP/1.1\r\nhost: up\r\n\r\n');
  await once(client, 'data');
  client.resetAndDestroy();
  await waitFor('the abandoned answer counted', async () => (await metricValue(proxy, 'response_total')) === 2);
  assert.equal(await metricValue(proxy, 'request_total'), 2);
  assert.equal(await metricValue(proxy, 'response_total', { status_code: '200', classification: 'failure' }), 2);
  assert.equal(await metricValue(proxy, 'response_latency_ms_count'), 2, 'latency counted once per answer');
});

void test('a pooled connection the server closed while idle is replaced without failing the request', async (t) => {
  const echo = await startEchoServer();
  echo.server.keepAliveTimeout = 100; // far below the proxy's pool idle timeout, on purpose
  const proxy = await startTestProxy(`127.0.0.1:${echo.port}`, { upstreamIdleTimeoutMs: '60000' });
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  for (let i = 0; i < 5; i++) {
    assert.equal((await request(`${proxy.url}/r${i}`)).status, 200);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(await metricValue(proxy, 'response_total', { classification: 'failure' }), 0);
});

void test('the inbound listener proxies the same way and labels its metrics direction="inbound"', async (t) => {
  const echo = await startEchoServer();
  const proxy = await startTestProxy(`127.0.0.1:${echo.port}`);
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  const r = await request(`http://127.0.0.1:${proxy.inbound.port}/in`);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body.toString()).url, '/in');
  assert.equal(await metricValue(proxy, 'request_total', { direction: 'inbound' }), 1);
  assert.equal(await metricValue(proxy, 'request_total', { direction: 'outbound' }), 0);
  assert.equal(await metricValue(proxy, 'tcp_open_total', { direction: 'inbound' }), 1);
});

void test('a shutdown answers a request already on its way on an idle keep-alive connection, then closes it', async (t) => {
  const echo = await startEchoServer();
  const proxy = await startTestProxy(`127.0.0.1:${echo.port}`);
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  const s = net.connect(proxy.outbound.port, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString('latin1')));
  const closed = once(s, 'close');
  s.write('GET /first HTTP/1.1\r\nhost: up\r\n\r\n');
  await waitFor('the first answer', () => /\r\n\r\n\{[^]*\}$/.test(got));
  // The proxy starts draining while the connection is idle; the client's next request is on its way.
  const stopped = proxy.close();
  s.write('GET /second HTTP/1.1\r\nhost: up\r\n\r\n');
  await closed;
  await stopped;
  const answers = got.split(/(?=HTTP\/1\.1 )/);
  assert.equal(answers.length, 2, got);
  assert.match(answers[0] ?? '', /^HTTP\/1\.1 200 /);
  assert.match(answers[1] ?? '', /^HTTP\/1\.1 200 [^]*\r\nconnection: close\r\n[^]*"url":"\/second"/i, got);
});

void test('an idle keep-alive client connection is closed after the idle timeout, a busy one is not', async (t) => {
  const slow = http.createServer((req, res) => setTimeout(() => res.end(`done ${req.url}`), 700));
  const port = await listen(slow);
  const proxy = await startTestProxy(`127.0.0.1:${port}`, { idleTimeoutMs: '300' });
  t.after(async () => {
    await proxy.close();
    await closeServer(slow);
  });
  // A request that takes longer than the idle timeout still completes: the connection is busy, not idle.
  const s = net.connect(proxy.outbound.port, '127.0.0.1');
  let got = '';
  s.on('data', (d) => (got += d.toString('latin1')));
  s.write('GET /long HTTP/1.1\r\nhost: x\r\n\r\n');
  const closedAt = new Promise<void>((resolve) => s.on('close', () => resolve()));
  await closedAt;
  assert.match(got, /^HTTP\/1\.1 200 OK[\s\S]*done \/long$/);
  assert.equal(await metricValue(proxy, 'tcp_open_connections', { direction: 'outbound' }), 0, 'closed once idle');
});
