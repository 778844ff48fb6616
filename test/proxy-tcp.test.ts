// In-process tests of opaque TCP through the proxy: ports listed as opaque, connections that fall back
// to opaque after the detection timeout, and TLS passed through untouched. Real sockets only.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { closeServer, listen, metricValue, startTestProxy, type TestProxy, waitFor } from './helpers.js';

/** A TCP server; every connection it accepted is destroyed after the test. */
async function startServer(
  t: TestContext,
  onConn: (s: net.Socket) => void,
  opts: net.ServerOpts = {},
): Promise<number> {
  const conns = new Set<net.Socket>();
  const server = net.createServer(opts, (s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => {});
    onConn(s);
  });
  const port = await listen(server);
  t.after(async () => {
    for (const s of conns) s.destroy();
    await closeServer(server);
  });
  return port;
}

async function proxyTo(
  t: TestContext,
  port: number,
  settings: Parameters<typeof startTestProxy>[1] = {},
): Promise<TestProxy> {
  const proxy = await startTestProxy(`127.0.0.1:${port}`, settings);
  t.after(() => proxy.close());
  return proxy;
}

function connect(t: TestContext, proxy: TestProxy, opts: Partial<net.NetConnectOpts> = {}): net.Socket {
  const s = net.connect({ port: proxy.outbound.port, host: '127.0.0.1', ...opts } as net.NetConnectOpts);
  t.after(() => s.destroy());
  return s;
}

/** Everything the socket receives until its readable side ends; rejects on an error. */
function readAll(s: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** Waits until `n` bytes arrived (or the stream ends, then it rejects). */
function readBytes(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      have += d.length;
      if (have >= n) {
        s.off('data', onData);
        s.off('end', onEnd);
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = () => reject(new Error(`stream ended after ${have} of ${n} bytes`));
    s.on('data', onData);
    s.once('end', onEnd);
  });
}

/** Writes `total` random bytes with backpressure; resolves with their sha256 once all were handed over. */
async function sendRandom(s: net.Socket, total: number): Promise<string> {
  const hash = crypto.createHash('sha256');
  const chunk = 256 * 1024;
  for (let sent = 0; sent < total; sent += chunk) {
    const b = crypto.randomBytes(Math.min(chunk, total - sent));
    hash.update(b);
    if (!s.write(b)) await once(s, 'drain');
  }
  return hash.digest('hex');
}

function hashUntilEnd(s: net.Socket): Promise<{ hex: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    s.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    s.once('end', () => resolve({ hex: hash.digest('hex'), bytes }));
    s.once('error', reject);
  });
}

void test('tcp: an opaque port carries bytes both ways', async (t) => {
  const port = await startServer(t, (s) => s.on('data', (d: Buffer) => s.write(d.toString().toUpperCase())));
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  const c = connect(t, proxy);
  c.write('hello ');
  assert.equal((await readBytes(c, 6)).toString(), 'HELLO ');
  c.write('again');
  assert.equal((await readBytes(c, 5)).toString(), 'AGAIN');
  assert.equal(
    await metricValue(proxy, 'tcp_open_total', { direction: 'outbound', target_addr: `127.0.0.1:${port}` }),
    1,
  );
});

void test('tcp: the client half-closes; the server answers after EOF; the client gets all of it, then the close', async (t) => {
  const port = await startServer(
    t,
    (s) => {
      const hash = crypto.createHash('sha256');
      let n = 0;
      s.on('data', (d: Buffer) => {
        hash.update(d);
        n += d.length;
      });
      // Only after EOF: the answer depends on everything the client sent (like a "sort" or an upload).
      s.on('end', () => {
        const digest = hash.digest('hex');
        for (let i = 0; i < 100; i++) s.write(`${i} ${n} ${digest}\n`);
        s.end('bye\n');
      });
    },
    { allowHalfOpen: true },
  );
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  const c = connect(t, proxy);
  const closed = once(c, 'close');
  const answer = readAll(c);
  const body = crypto.randomBytes(300_000);
  c.end(body);
  const text = (await answer).toString();
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 101);
  assert.equal(lines[0], `0 ${body.length} ${crypto.createHash('sha256').update(body).digest('hex')}`);
  assert.equal(lines[100], 'bye');
  await closed;
});

void test('tcp: the server half-closes first; the client can still send and get an answer', async (t) => {
  const serverSockets: net.Socket[] = [];
  const port = await startServer(
    t,
    (s) => {
      serverSockets.push(s);
      s.end('ready\n'); // a FIN first: "I have said everything", yet it keeps reading
    },
    { allowHalfOpen: true },
  );
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  const c = connect(t, proxy, { allowHalfOpen: true });
  const got = await readAll(c);
  assert.equal(got.toString(), 'ready\n');
  // The server's side is closed; the client's is not: it still sends, and the server reads it all.
  const server = await waitFor('the server side of the connection', () => serverSockets[0]);
  const serverEnd = readAll(server);
  c.end('still talking after your FIN');
  assert.equal((await serverEnd).toString(), 'still talking after your FIN');
});

void test('tcp: a client that sends and half-closes before detection decides still gets its answer', async (t) => {
  const port = await startServer(
    t,
    (s) => {
      const all = readAll(s);
      void all.then((b) => s.end(`you said ${JSON.stringify(b.toString())} and closed`));
    },
    { allowHalfOpen: true },
  );
  // Not opaque: "hello" is too short to decide on, then the FIN makes it final (like `echo hello | nc`).
  const proxy = await proxyTo(t, port, { opaquePorts: '', detectTimeoutMs: '60000' });
  const c = connect(t, proxy);
  const answer = readAll(c);
  c.end('hello');
  assert.equal((await answer).toString(), 'you said "hello" and closed');
});

void test('tcp: 50 MB each way at the same time arrive intact (backpressure)', async (t) => {
  const size = 50 * 1024 * 1024;
  let serverResult!: Promise<{ received: { hex: string; bytes: number }; sent: string }>;
  const port = await startServer(
    t,
    (s) => {
      const received = hashUntilEnd(s);
      const sent = sendRandom(s, size).then((hex) => {
        s.end();
        return hex;
      });
      serverResult = Promise.all([received, sent]).then(([r, x]) => ({ received: r, sent: x }));
    },
    { allowHalfOpen: true },
  );
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  // Either side may finish first; a client that is not half-open would stop sending at the server's FIN.
  const c = connect(t, proxy, { allowHalfOpen: true });
  const clientGot = hashUntilEnd(c);
  const clientSent = await sendRandom(c, size);
  c.end();
  const got = await clientGot;
  const server = await serverResult;
  assert.equal(server.received.bytes, size);
  assert.equal(server.received.hex, clientSent);
  assert.equal(got.bytes, size);
  assert.equal(got.hex, server.sent);
});

void test('tcp: a client that stops reading stalls the server instead of filling the proxy', async (t) => {
  const size = 200 * 1024 * 1024;
  let accepted = 0;
  let progressAt = Date.now();
  let stalled!: () => void;
  const isStalled = new Promise<void>((r) => (stalled = r));
  const port = await startServer(t, (s) => {
    void (async () => {
      const b = Buffer.alloc(256 * 1024, 7);
      while (accepted < size && !s.destroyed) {
        accepted += b.length;
        progressAt = Date.now();
        if (!s.write(b)) await once(s, 'drain').catch(() => undefined);
      }
    })();
  });
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  const c = connect(t, proxy);
  c.pause(); // read nothing
  const watch = setInterval(() => {
    if (accepted > 0 && Date.now() - progressAt > 500) stalled();
  }, 50);
  t.after(() => clearInterval(watch));
  await isStalled;
  // Kernel buffers on loopback (a few MB per socket, two sockets) plus the proxy's bounded queue: far
  // less than the 200 MB the server wanted to send.
  assert.ok(accepted < 64 * 1024 * 1024, `the server handed over ${accepted} bytes while the client read nothing`);
  if (process.env.OUTRIGGER_TEST_VERBOSE) console.log(`stalled after ${accepted} bytes`);
  // And once the client reads, everything flows.
  let n = 0;
  c.on('data', (d: Buffer) => (n += d.length));
  c.resume();
  await waitFor('the connections accepted', () => (n >= accepted ? true : undefined));
});

void test(
  'tcp: a server-speaks-first protocol on an opaque port reaches the client at once',
  { timeout: 20_000 },
  async (t) => {
    const port = await startServer(t, (s) => {
      s.write('220 mail.example ESMTP ready\r\n');
      s.on('data', (d: Buffer) => {
        if (d.toString().startsWith('QUIT')) s.end('221 bye\r\n');
      });
    });
    // Detection would wait a minute: the banner can only arrive if the opaque port skips it.
    const proxy = await proxyTo(t, port, { opaquePorts: String(port), detectTimeoutMs: '60000' });
    const c = connect(t, proxy);
    assert.equal((await readBytes(c, 30)).toString(), '220 mail.example ESMTP ready\r\n');
    const rest = readAll(c);
    c.write('QUIT\r\n');
    assert.equal((await rest).toString(), '221 bye\r\n');
    assert.equal(await metricValue(proxy, 'protocol_detect_timeout_total'), 0);
  },
);

void test('tcp: a server-speaks-first protocol on a non-opaque port falls back to opaque after the detection timeout', async (t) => {
  const port = await startServer(t, (s) => {
    s.write('* OK mysql-ish greeting\r\n');
    s.on('data', (d: Buffer) => s.write(`got ${d.toString()}`));
  });
  const proxy = await proxyTo(t, port, { opaquePorts: '', detectTimeoutMs: '300' });
  const c = connect(t, proxy);
  assert.equal((await readBytes(c, 25)).toString(), '* OK mysql-ish greeting\r\n');
  assert.equal(await metricValue(proxy, 'protocol_detect_timeout_total', { direction: 'outbound' }), 1);
  // Bytes flow both ways afterwards, even ones that look like HTTP.
  c.write('GET / HTTP/1.1\r\n\r\n');
  assert.equal((await readBytes(c, 22)).toString(), 'got GET / HTTP/1.1\r\n\r\n');
});

const execFileP = promisify(execFile);

void test('tcp: a TLS handshake from a real client to a real TLS server passes through untouched', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-tls-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  await execFileP('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ]); // prettier-ignore
  const pem = { key: await fs.readFile(key), cert: await fs.readFile(cert) };
  const server = tls.createServer({ ...pem, ALPNProtocols: ['echo/1'] }, (s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(`tls echo: ${d.toString()}`));
  });
  const conns = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
  });
  const port = await listen(server);
  t.after(async () => {
    for (const s of conns) s.destroy();
    await closeServer(server);
  });
  // Not an opaque port: detection sees the ClientHello and must hand it on as it is.
  const proxy = await proxyTo(t, port, { opaquePorts: '', detectTimeoutMs: '60000' });
  const c = tls.connect({
    host: '127.0.0.1',
    port: proxy.outbound.port,
    servername: 'localhost',
    ca: pem.cert,
    ALPNProtocols: ['echo/1'],
  });
  t.after(() => c.destroy());
  await once(c, 'secureConnect');
  assert.equal(c.authorized, true, String(c.authorizationError));
  assert.equal(c.alpnProtocol, 'echo/1');
  assert.equal(c.getPeerX509Certificate()?.fingerprint256, new crypto.X509Certificate(pem.cert).fingerprint256);
  c.write('over tls');
  const [d] = (await once(c, 'data')) as [Buffer];
  assert.equal(d.toString(), 'tls echo: over tls');
  assert.equal(await metricValue(proxy, 'protocol_detect_timeout_total'), 0);
});

void test('tcp: nothing listening on an opaque port → the client is reset, with no data', async (t) => {
  const s = net.createServer();
  const deadPort = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  const proxy = await proxyTo(t, deadPort, { opaquePorts: String(deadPort) });
  const c = connect(t, proxy);
  let bytes = 0;
  c.on('data', (d: Buffer) => (bytes += d.length));
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    c.once('error', resolve);
    c.once('close', () => resolve(undefined));
  });
  assert.equal(bytes, 0);
  if (err) assert.equal(err.code, 'ECONNRESET');
});

void test('tcp: closes travel both ways: a server FIN ends the client; a reset on either side resets the other', async (t) => {
  const serverSockets: net.Socket[] = [];
  const port = await startServer(t, (s) => {
    serverSockets.push(s);
    s.on('data', (d: Buffer) => {
      if (d.toString() === 'close please') s.end('closing');
    });
  });
  const proxy = await proxyTo(t, port, { opaquePorts: String(port) });
  const a = connect(t, proxy);
  const aAll = readAll(a);
  a.write('close please');
  assert.equal((await aAll).toString(), 'closing');
  await once(a, 'close');

  const b = connect(t, proxy);
  b.write('hi');
  const server = await waitFor('the second server connection', () => serverSockets[1]);
  let serverError: string | undefined;
  server.on('error', (e: NodeJS.ErrnoException) => (serverError = e.code));
  const serverClosed = new Promise((r) => server.once('close', r));
  b.resetAndDestroy();
  await serverClosed;
  assert.equal(serverError, 'ECONNRESET', 'a reset is passed on as a reset');

  // And the other way: the server resets, the client sees a reset.
  const c = connect(t, proxy);
  c.write('hi');
  const server2 = await waitFor('the third server connection', () => serverSockets[2]);
  const clientErr = new Promise<string | undefined>((r) => {
    c.once('error', (e: NodeJS.ErrnoException) => r(e.code));
    c.once('close', () => r(undefined));
  });
  server2.resetAndDestroy();
  assert.equal(await clientErr, 'ECONNRESET');
  // No connection is left open in the proxy.
  for (;;) {
    if ((await metricValue(proxy, 'tcp_open_connections', { target_addr: `127.0.0.1:${port}` })) === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
});
