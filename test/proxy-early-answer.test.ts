// The proxy answers a request itself before the client has finished sending its body (here 503: the
// Service has no endpoints), and the client must stop uploading: HTTP/1 answers, half-closes and drops
// what still comes for a bounded while (then closes); HTTP/2 answers and resets the client's stream with
// NO_ERROR (RFC 9113 section 8.1). Real clients that upload a large body slowly: curl for HTTP/1, a raw
// HTTP/2 peer (frames checked) and node:http2 for HTTP/2. No root: everything is on loopback.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import { H2ErrorCode } from '../src/proxy/http2/wire/errors.js';
import { dataFrameHeader, Flag, FRAME_HEADER_SIZE, FrameType, headersFrames } from '../src/proxy/http2/wire/frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from '../src/proxy/http2/wire/hpack.js';
import { RawPeer } from '../src/proxy/http2/wire/testkit.js';
import { startTestControlPlane } from './control-plane.js';
import { startTestProxy, type TestProxy } from './helpers.js';

const VIP = '127.0.0.62';
/** The body each client would send in full (bytes), far more than any bound below. */
const BODY = 64 << 20;
/** What a client may have got out before it stopped: the proxy's linger bound (256 KiB) and the
 *  loopback socket buffers on both sides (a few MiB), nowhere near BODY. */
const STOPPED_WITHIN = 16 << 20;

/** A control plane whose Service `web` (VIP:80) has no endpoints, and a proxy sending everything to it. */
async function startProxy(t: TestContext): Promise<TestProxy> {
  const store = new LocalStore();
  store.replace({
    services: [service('web', VIP, [], { ports: [{ name: 'http', port: 80, appProtocol: 'http' }] })],
    pods: [],
    routes: [],
  });
  const cp = await startTestControlPlane({ store });
  t.after(() => cp.close());
  const proxy = await startTestProxy(`${VIP}:80`, {
    destinationAddr: cp.addr,
    trustAnchors: cp.ca.trustAnchorPem,
    opaquePorts: '',
  });
  t.after(() => proxy.close());
  return proxy;
}

void test('http/1: curl uploading slowly gets the 503 and stops; the proxy does not read the body', async (t) => {
  const proxy = await startProxy(t);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-early-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'body');
  await fs.writeFile(file, Buffer.alloc(BODY, 0x61));
  // 4 MiB/s: the whole body would take 16 s; stopped, curl is done in well under its 60 s limit.
  const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    execFile(
      'curl',
      [
        '-sS',
        '--max-time',
        '60',
        '--limit-rate',
        '4M',
        '-H',
        'expect:',
        '-T',
        file,
        '-w',
        '\n%{http_code} %{size_upload}',
        `${proxy.url}/upload`,
      ],
      { timeout: 90_000 },
      (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? -1), out: stdout, err: stderr }),
    );
  });
  const last = r.out.trim().split('\n').pop() ?? '';
  const [status, uploaded] = last.split(' ').map(Number);
  assert.equal(status, 503, `curl: ${r.out} ${r.err}`);
  assert.equal(r.code, 0, `curl exit ${r.code}: ${r.err}`);
  assert.ok((uploaded as number) < STOPPED_WITHIN, `curl uploaded ${uploaded} bytes of ${BODY}`);
  // The proxy goes on: the next connection is answered.
  const again = await fetch(`${proxy.url}/`);
  assert.equal(again.status, 503);
  await again.text();
});

function requestFrames(e: HpackEncoder, id: number, endStream: boolean): Buffer {
  const l = new HeaderList()
    .add(':method', 'POST')
    .add(':scheme', 'http')
    .add(':path', '/upload')
    .add(':authority', 'web');
  return headersFrames(e.encode(l, FRAME_HEADER_SIZE), id, endStream, 16384);
}

void test('http/2: the 503, then RST_STREAM(NO_ERROR) on the uploading stream; the connection goes on', async (t) => {
  const proxy = await startProxy(t);
  const peer = await RawPeer.connect(proxy.outbound.port);
  t.after(() => peer.destroy());
  const enc = new HpackEncoder({ huffman: 'never' });
  peer.send(requestFrames(enc, 1, false));
  // DATA within the initial windows (64 KiB - 1), slowly; the proxy's WINDOW_UPDATEs let more go.
  const chunk = Buffer.alloc(16000, 0x62);
  let sent = 0;
  const isRst = (f: { type: number; streamId: number }) => f.type === FrameType.RST_STREAM && f.streamId === 1;
  while (sent < BODY && peer.frames.find(isRst) === undefined && !peer.closed) {
    peer.send(dataFrameHeader(1, chunk.length, false), chunk);
    sent += chunk.length;
    await new Promise((r) => setTimeout(r, 5));
  }
  const h = await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1);
  assert.ok(h !== null, 'an answer on stream 1');
  assert.equal(new HpackDecoder().decode(h.payload).values[0], '503');
  const rst = await peer.waitFor(isRst);
  assert.ok(rst !== null, 'RST_STREAM on stream 1');
  assert.equal(rst.payload.readUInt32BE(0), H2ErrorCode.NO_ERROR);
  // The answer was whole before the reset (END_STREAM on its last frame).
  const i = peer.frames.indexOf(rst);
  const ends = peer.frames
    .slice(0, i)
    .some(
      (f) =>
        f.streamId === 1 &&
        (f.type === FrameType.HEADERS || f.type === FrameType.DATA) &&
        (f.flags & Flag.END_STREAM) !== 0,
    );
  assert.ok(ends, 'the answer ended before the reset');
  assert.ok(sent < STOPPED_WITHIN, `the peer got ${sent} bytes out before the reset`);
  // The connection goes on: another request on it is answered, and no GOAWAY came.
  peer.send(requestFrames(enc, 3, true));
  const h3 = await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
  assert.ok(h3 !== null);
  assert.equal(
    peer.frames.find((f) => f.type === FrameType.GOAWAY),
    undefined,
  );
});

void test('http/2: node:http2 uploading a large body slowly gets the 503 and its stream ends', async (t) => {
  const proxy = await startProxy(t);
  const session = http2.connect(proxy.url);
  t.after(() => session.destroy());
  const req = session.request({ ':method': 'POST', ':path': '/upload' });
  const chunk = Buffer.alloc(16384, 0x63);
  let written = 0;
  let stop = false;
  const pump = async (): Promise<void> => {
    while (!stop && !req.destroyed && !req.writableEnded) {
      if (written >= BODY) {
        // All of it went: the proxy took the whole upload (the assertion below says so).
        req.end();
        return;
      }
      const more = req.write(chunk);
      written += chunk.length;
      if (!more) await once(req, 'drain').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  void pump();
  const [headers] = (await new Promise((resolve, reject) => {
    req.once('response', (h) => resolve([h]));
    req.once('error', reject);
  })) as [http2.IncomingHttpHeaders];
  assert.equal(headers[':status'], 503);
  req.resume();
  await new Promise<void>((r) => req.once('close', () => r()));
  stop = true;
  assert.equal(req.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  assert.ok(written < STOPPED_WITHIN, `node:http2 wrote ${written} bytes before its stream ended`);
});
