// The tiny forwarder (server-role connection to client-role connection) between real clients and our
// test server: h2load pushes 10,000 requests through it; node:http2 checks bodies both ways under small
// windows, trailers, 1xx and resets in both directions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { H2ErrorCode } from './errors.js';
import { pattern, serve, sha256 } from './testkit.js';
import { TinyForwarder } from './tiny-forwarder.js';

async function forwarder(upstreamPort: number, options = {}) {
  const server = TinyForwarder.listen(0, upstreamPort, options);
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

void test(
  'h2load: 10,000 requests through the tiny forwarder, all succeed',
  { skip: !existsSync('/usr/bin/h2load') },
  async () => {
    const upstream = await serve();
    const fwd = await forwarder(upstream.port);
    const out = await new Promise<string>((resolve, reject) => {
      execFile('h2load', ['-n', '10000', '-c', '16', '-m', '10', `http://127.0.0.1:${fwd.port}/`], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
    });
    assert.match(out, /requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed/);
    assert.match(out, /status codes: 10000 2xx/);
    // 1 kB a response: the bodies came through whole.
    assert.match(out, /\(10240000\) data/);
    fwd.server.close();
    await upstream.close();
  },
);

void test('node:http2 through the forwarder: bodies both ways under 16 kB windows, trailers, 1xx, resets', async () => {
  const upstream = await serve({ streamWindow: 16384, connectionWindow: 65535 });
  const fwd = await forwarder(upstream.port, {
    streamWindow: 16384,
    connectionWindow: 65535,
    maxQueuedPerStream: 16384,
  });
  const client = http2.connect(`http://127.0.0.1:${fwd.port}`, { settings: { initialWindowSize: 16384 } });
  const call = (path: string, body?: Buffer) =>
    new Promise<{ status: number[]; body: Buffer; trailers: http2.IncomingHttpHeaders; rst: number }>((resolve) => {
      const req = client.request({ ':path': path, ':method': body ? 'POST' : 'GET' }, { endStream: !body });
      const chunks: Buffer[] = [];
      const status: number[] = [];
      let trailers: http2.IncomingHttpHeaders = {};
      req.on('headers', (h) => status.push(Number(h[':status'])));
      req.on('response', (h) => status.push(Number(h[':status'])));
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', () => {});
      req.on('close', () => resolve({ status, body: Buffer.concat(chunks), trailers, rst: req.rstCode ?? 0 }));
      if (body) req.end(body);
    });
  const body = pattern(2 << 20, 21);
  const [echo, big, tr, info] = await Promise.all([
    call('/echo', body),
    call(`/size/${2 << 20}`),
    call('/trailers', body),
    call('/info'),
  ]);
  assert.equal(sha256(echo.body), sha256(body));
  assert.equal(sha256(big.body), sha256(pattern(2 << 20)));
  assert.equal(tr.trailers['x-sha256'], sha256(body));
  assert.deepEqual(info.status, [103, 200]);
  // The upstream resets: the client sees the code.
  assert.equal((await call('/reset')).rst, H2ErrorCode.CANCEL);
  // The client resets: the upstream handler hears it through the forwarder.
  const req = client.request({ ':path': '/hang' });
  req.on('error', () => {});
  await new Promise((r) => setTimeout(r, 100));
  req.close(http2.constants.NGHTTP2_CANCEL);
  const h = upstream.handlers[0]!;
  for (let i = 0; i < 100 && h.resets.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(h.resets, [H2ErrorCode.CANCEL]);
  client.close();
  fwd.server.close();
  await upstream.close();
});
