// Bad input never crashes the proxy nor disturbs other connections: each malformed request gets its
// own error (400, 431, 408) while requests of other clients in flight at the same time all succeed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { closeServer, listen, metricValue, rawExchange, startTestProxy } from './helpers.js';

/** A slow upstream (each answer after 150 ms), so that good requests are in flight while bad ones arrive. */
async function slowUpstream() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end(`ok ${req.url}`), 150));
  });
  const port = await listen(server);
  return { port, close: () => closeServer(server) };
}

/** Keeps `n` keep-alive clients sending requests until `stop` resolves; returns how many failed. */
function goodTraffic(url: string, n: number, stop: Promise<void>): Promise<{ ok: number; failed: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n });
  let stopped = false;
  void stop.then(() => (stopped = true));
  const failed: string[] = [];
  let ok = 0;
  const one = (i: number) =>
    new Promise<void>((resolve) => {
      http
        .get(`${url}/good/${i}`, { agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            if (res.statusCode === 200 && body === `ok /good/${i}`) ok++;
            else failed.push(`${res.statusCode} ${body}`);
            resolve();
          });
        })
        .on('error', (e) => {
          failed.push(e.message);
          resolve();
        });
    });
  const loop = async (i: number) => {
    while (!stopped) await one(i);
  };
  return Promise.all(Array.from({ length: n }, (_, i) => loop(i))).then(() => {
    agent.destroy();
    return { ok, failed };
  });
}

void test('malformed input gets its error while other clients are served', async (t) => {
  const up = await slowUpstream();
  const proxy = await startTestProxy(`127.0.0.1:${up.port}`, { headerTimeoutMs: '500', maxHeaderBytes: '8192' });
  t.after(async () => {
    await proxy.close();
    await up.close();
  });
  let stop!: () => void;
  const traffic = goodTraffic(proxy.url, 8, new Promise<void>((r) => (stop = r)));
  const port = proxy.outbound.port;
  const cases: [string, string | string[], RegExp][] = [
    ['malformed request line', 'GET /a b HTTP/1.1\r\nhost: x\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['space in a header name', 'GET / HTTP/1.1\r\nhost: x\r\nx y: 1\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nhost: x\r\nx-y: a\x00b\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['control character in the target', 'GET /\x7f HTTP/1.1\r\nhost: x\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['unknown HTTP version', 'GET / HTTP/3.0\r\nhost: x\r\n\r\n', /^HTTP\/1\.1 505 /],
    ['header without a colon', 'GET / HTTP/1.1\r\nhost: x\r\nnocolon\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n  folded\r\n\r\n', /^HTTP\/1\.1 400 /],
    [
      'content-length and transfer-encoding together',
      'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    ['invalid content-length', 'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['oversized headers', `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(10000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
    ['oversized headers that never end', `GET / HTTP/1.1\r\nx-big: ${'a'.repeat(20000)}`, /^HTTP\/1\.1 431 /],
    [
      'invalid chunk size',
      'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'chunk longer than its size',
      'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
  ];
  const results = await Promise.all(cases.map(([, bytes]) => rawExchange(port, bytes)));
  // Slowloris: one byte every 100 ms never completes a head; the header timeout (500 ms) answers 408.
  const slow = await new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const head = 'GET /slow HTTP/1.1\r\nhost: x\r\nx-drip: ' + 'y'.repeat(100);
    let i = 0;
    const timer = setInterval(() => {
      if (i < head.length && !s.destroyed) s.write(head[i++] as string);
    }, 100);
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(timer);
      resolve(got);
    });
  });
  stop();
  const { ok, failed } = await traffic;
  cases.forEach(([name, , expect], i) => {
    assert.match(results[i] as string, expect, name);
    assert.match(results[i] as string, /outrigger proxy: /, `${name}: the body names the proxy`);
  });
  assert.match(slow, /^HTTP\/1\.1 408 /);
  assert.deepEqual(failed, [], 'no good request failed');
  assert.ok(ok >= 8, `good requests completed: ${ok}`);
  assert.ok((await metricValue(proxy, 'response_total', { status_code: '400' })) >= 9);
  assert.equal(await metricValue(proxy, 'response_total', { status_code: '200', classification: 'success' }), ok);
});

void test('a malformed upstream response is a 502, not a crash', async (t) => {
  const bad = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 abc nonsense\r\n\r\n'));
  });
  const port = await listen(bad);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(bad);
  });
  const out = await rawExchange(proxy.outbound.port, 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
  assert.match(out, /^HTTP\/1\.1 502 /);
  assert.match(out, /invalid response: malformed status line/);
});

void test('mutated requests (random bytes flipped, cut, repeated) never take the proxy down', async (t) => {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('fine'));
  });
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`, { headerTimeoutMs: '300', detectTimeoutMs: '300' });
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const seeds = [
    'GET /a?b=c HTTP/1.1\r\nhost: x\r\naccept: */*\r\n\r\n',
    'POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello',
    'POST /c HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n',
    'GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
  ];
  // A fixed-seed generator, so a failure can be replayed.
  let state = 0x2f6b1a3c;
  const rand = (n: number) => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state % n;
  };
  const mutate = (s: string): Buffer => {
    const b = Buffer.from(s, 'latin1');
    const out = Buffer.from(b);
    const kind = rand(4);
    if (kind === 0) for (let i = 0; i < 1 + rand(4); i++) out[rand(out.length)] = rand(256);
    if (kind === 1) return out.subarray(0, rand(out.length));
    if (kind === 2) return Buffer.concat([out, out.subarray(rand(out.length))]);
    if (kind === 3) out[rand(out.length)] = [0x0d, 0x0a, 0x3a, 0x20, 0x00][rand(5)] as number;
    return out;
  };
  for (let round = 0; round < 10; round++) {
    await Promise.all(
      Array.from({ length: 30 }, () =>
        rawExchange(proxy.outbound.port, mutate(seeds[rand(seeds.length)] as string), 1000).catch(() => ''),
      ),
    );
  }
  const after = await rawExchange(proxy.outbound.port, 'GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
  assert.match(after, /^HTTP\/1\.1 200 OK[\s\S]*fine$/);
});
