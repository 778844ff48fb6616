// H2Connection against real HTTP/2 implementations on loopback: curl, nghttp and h2load as clients of our
// server role; nghttpd (small windows, padding, trailers, a stream limit) as the server of our client role.
// Tests skip when a tool is missing (packages curl, nghttp2-client, nghttp2-server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net, { type AddressInfo } from 'node:net';
import { connect, pattern, serve, sha256 } from './testkit.js';

function run(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 64 << 20, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr: stderr.toString() });
    });
  });
}

function has(tool: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => {
    try {
      readFileSync(path.join(d, tool), { flag: 'r' }).subarray(0, 1);
      return true;
    } catch {
      return false;
    }
  });
}

const tmp = mkdtempSync(path.join(tmpdir(), 'h2conn-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const upload = pattern(1 << 20, 5);
writeFileSync(path.join(tmp, 'upload.bin'), upload);

void test('curl --http2-prior-knowledge: downloads, an upload echoed, trailers', { skip: !has('curl') }, async () => {
  const srv = await serve({ streamWindow: 16384 });
  const base = `http://127.0.0.1:${srv.port}`;
  const down = await run('curl', ['-sS', '--http2-prior-knowledge', `${base}/size/3000000`]);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(sha256(down.stdout), sha256(pattern(3000000)));
  const echo = await run('curl', [
    '-sS',
    '--http2-prior-knowledge',
    '--data-binary',
    `@${tmp}/upload.bin`,
    `${base}/echo`,
  ]);
  assert.equal(echo.code, 0, echo.stderr);
  assert.equal(sha256(echo.stdout), sha256(upload));
  // -D - prints the response head and, after the body, the trailers.
  const tr = await run('curl', [
    '-sS',
    '--http2-prior-knowledge',
    '-D',
    '-',
    '--data-binary',
    `@${tmp}/upload.bin`,
    `${base}/trailers`,
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  const text = tr.stdout.toString('latin1');
  assert.match(text, /^HTTP\/2 200/);
  assert.match(text, new RegExp(`x-sha256: ${sha256(upload)}`));
  // Ten curls at once (curl 7.88 fails a second URL on a prior-knowledge connection, against nghttpd
  // too, so each curl makes one request).
  const many = await Promise.all(
    Array.from({ length: 10 }, (_, i) => run('curl', ['-sS', '--http2-prior-knowledge', `${base}/size/${1000 + i}`])),
  );
  many.forEach((m, i) => assert.equal(sha256(m.stdout), sha256(pattern(1000 + i))));
  await srv.close();
});

void test(
  'nghttp: 100 concurrent streams, uploads under 16 kB windows both ways',
  { skip: !has('nghttp') },
  async () => {
    const srv = await serve({ streamWindow: 16384, connectionWindow: 65535 });
    const base = `http://127.0.0.1:${srv.port}`;
    const many = await run('nghttp', ['-n', '-s', '-m', '100', `${base}/size/20000`]);
    assert.equal(many.code, 0, many.stderr);
    assert.equal((many.stdout.toString().match(/\/size\/20000/g) ?? []).length, 100);
    // -w/-W 14: nghttp's own windows of 16 kB, so our writes wait on its WINDOW_UPDATEs.
    const echo = await run('nghttp', ['-w', '14', '-W', '14', '-d', `${tmp}/upload.bin`, `${base}/echo`]);
    assert.equal(echo.code, 0, echo.stderr);
    assert.equal(sha256(echo.stdout), sha256(upload));
    const big = await run('nghttp', ['-w', '14', '-W', '15', `${base}/size/2000000`]);
    assert.equal(sha256(big.stdout), sha256(pattern(2000000)));
    await srv.close();
  },
);

void test(
  'h2load: 10,000 requests over 10 connections x 10 streams, all succeed',
  { skip: !has('h2load') },
  async () => {
    const srv = await serve();
    const r = await run('h2load', ['-n', '10000', '-c', '10', '-m', '10', `http://127.0.0.1:${srv.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed/);
    assert.match(r.stdout.toString(), /status codes: 10000 2xx/);
    await srv.close();
  },
);

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** nghttpd on loopback serving `dir`, with `args`; resolves once it accepts connections. */
export async function nghttpd(dir: string, args: string[]): Promise<{ port: number; stop(): void }> {
  const port = await freePort();
  const child = spawn('nghttpd', ['--no-tls', '-d', dir, ...args, String(port)], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, stop: () => child.kill('SIGTERM') };
}

void test(
  'client role against nghttpd: small windows, padding, trailers, echo upload, its stream limit',
  { skip: !has('nghttpd') },
  async () => {
    const dir = path.join(tmp, 'htdocs');
    rmSync(dir, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    const big = pattern(3 << 20, 11);
    writeFileSync(path.join(dir, 'big'), big);
    writeFileSync(path.join(dir, 'small'), pattern(1024, 12));
    // 16 kB stream windows on nghttpd's side, padding on every DATA frame, a trailer, at most 20 streams.
    const d = await nghttpd(dir, [
      '-w',
      '14',
      '-W',
      '16',
      '-b',
      '16',
      '--trailer',
      'x-t: yes',
      '--echo-upload',
      '-m',
      '20',
    ]);
    try {
      const { conn, h } = await connect(d.port, { streamWindow: 16384, connectionWindow: 65535 });
      assert.equal(conn.peerSettings.maxConcurrentStreams, 20);
      assert.equal(conn.peerSettings.initialWindowSize, 16383); // 2^14 - 1
      const req = { ':method': 'GET', ':scheme': 'http', ':authority': 'localhost' };
      const got = await h.request({ ...req, ':path': '/big' });
      assert.equal(got.status, '200');
      assert.equal(sha256(got.bodyBytes()), sha256(big));
      assert.equal(got.trailers?.['x-t'], 'yes');
      // Echo upload of 1 MB through nghttpd's 16 kB windows.
      const echo = await h.request({ ...req, ':method': 'POST', ':path': '/small' }, upload, 7000);
      assert.equal(sha256(echo.bodyBytes()), sha256(upload));
      // 200 requests against a limit of 20: the connection fills, then takes more as streams finish.
      const waves: Promise<unknown>[] = [];
      let sent = 0;
      let fullSeen = 0;
      while (sent < 200) {
        if (conn.full) {
          fullSeen++;
          await Promise.race(waves);
          await new Promise((r) => setImmediate(r));
          continue;
        }
        const p = h.request({ ...req, ':path': '/small' }).then((ex) => {
          assert.equal(sha256(ex.bodyBytes()), sha256(pattern(1024, 12)));
          void waves.splice(waves.indexOf(p), 1);
        });
        waves.push(p);
        sent++;
      }
      await Promise.all(waves);
      assert.ok(fullSeen > 0);
      assert.ok(conn.stats.streamsOpened >= 202);
      conn.goaway();
      assert.equal(await h.closed, undefined);
    } finally {
      d.stop();
    }
  },
);
