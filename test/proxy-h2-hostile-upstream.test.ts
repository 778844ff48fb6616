// Hostile HTTP/2 upstreams behind a running proxy (the proxy as the client; test/proxy-h2-hostile.test.ts
// has the hostile clients): a crafted server on a raw socket, behind a Service whose route sends /good to
// a well-behaved h2c app and everything else to it. For each case: the client's stream ends with the
// proxy's 502 or the reset RFC 9113 calls for, a request to the good upstream at the same time and one
// after it are answered, the proxy's counter for the case moves, and the process's RSS stays within a
// bound. No root: everything is on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { H2ErrorCode } from '../src/proxy/http2/wire/errors.js';
import {
  dataFrameHeader,
  Flag,
  frame,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  goAwayFrame,
  headersFrames,
  pingFrame,
  rstStreamFrame,
  settingsAckFrame,
  settingsFrame,
} from '../src/proxy/http2/wire/frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from '../src/proxy/http2/wire/hpack.js';
import { listen, startTestProxy, type TestProxy } from './helpers.js';
import { sumMetric } from './metrics-text.js';
import { startTestControlPlane } from './control-plane.js';
import { pod, service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import type { EndpointEntry, RouteEntry, RouteRuleEntry } from '../src/control/store/store.js';

const PREFACE_LEN = 24;

/** One connection of the hostile server: frames in, and what each request path makes it do. */
function serveConnection(sock: net.Socket): void {
  const reader = new FrameReader({ maxFrameSize: 1 << 24 });
  const dec = new HpackDecoder();
  const enc = new HpackEncoder({ huffman: 'never' });
  let preface = PREFACE_LEN;
  let block: Buffer[] = [];
  let blockStream = 0;
  sock.on('error', () => {});
  sock.write(settingsFrame([]));
  const send = (...b: Buffer[]) => {
    if (!sock.destroyed) sock.write(Buffer.concat(b));
  };
  const ok = (id: number) => {
    const h = new HeaderList().add(':status', '200').add('content-type', 'text/plain');
    send(
      headersFrames(enc.encode(h, FRAME_HEADER_SIZE), id, false, 16384),
      dataFrameHeader(id, 2, true),
      Buffer.from('ok'),
    );
  };
  const request = (id: number, path: string) => {
    switch (path) {
      case '/hpack-bomb': {
        // One 4000-byte entry into the dynamic table, then 200 one-byte references to it: 4 kB on the
        // wire that decodes to 800 kB of fields.
        const value = 'v'.repeat(4000);
        const lit = Buffer.concat([
          Buffer.from([0x40, 3]),
          Buffer.from('x-b'),
          Buffer.from([0x7f, 0xa1, 0x1e]), // 4000 as an HPACK integer with a 7-bit prefix (RFC 7541 5.1)
          Buffer.from(value),
        ]);
        const status = Buffer.from([0x88]); // :status 200 (static index 8)
        const refs = Buffer.alloc(200, 0xbe); // index 62: the entry just added
        const b = Buffer.concat([Buffer.alloc(FRAME_HEADER_SIZE), status, lit, refs]);
        return send(headersFrames(b, id, true, 16384));
      }
      case '/continuation-flood': {
        const h = new HeaderList().add(':status', '200');
        const b = enc.encode(h, 0);
        send(frame(FrameType.HEADERS, 0, id, b));
        const junk = Buffer.alloc(1000, 0x40);
        for (let i = 0; i < 2000 && !sock.destroyed; i++) send(frame(FrameType.CONTINUATION, 0, id, junk));
        return;
      }
      case '/data-past-window': {
        const h = new HeaderList().add(':status', '200');
        send(headersFrames(enc.encode(h, FRAME_HEADER_SIZE), id, false, 16384));
        const chunk = Buffer.alloc(16384, 0x61);
        // Far past any window the proxy advertised, without waiting for WINDOW_UPDATE.
        for (let i = 0; i < 2048 && !sock.destroyed; i++) send(dataFrameHeader(id, chunk.length, false), chunk);
        return;
      }
      case '/unopened-stream': {
        const h = new HeaderList().add(':status', '200');
        return send(headersFrames(enc.encode(h, FRAME_HEADER_SIZE), id + 100, true, 16384));
      }
      case '/ping-flood': {
        for (let i = 0; i < 20000 && !sock.destroyed; i++) send(pingFrame(Buffer.alloc(8, i & 0xff), false));
        return;
      }
      case '/rst-every-stream':
        return send(rstStreamFrame(id, H2ErrorCode.INTERNAL_ERROR));
      case '/goaway-then-more': {
        // GOAWAY saying no stream was processed, then frames as if it had not been sent.
        send(goAwayFrame(0, H2ErrorCode.NO_ERROR));
        const h = new HeaderList().add(':status', '200');
        for (let i = 0; i < 50 && !sock.destroyed; i++)
          send(headersFrames(enc.encode(h, FRAME_HEADER_SIZE), id, true, 16384));
        return;
      }
      case '/malformed-frame':
        // A PING whose payload is not 8 bytes: FRAME_SIZE_ERROR (RFC 9113 section 6.7).
        return send(frame(FrameType.PING, 0, 0, Buffer.alloc(7)));
      default:
        return ok(id);
    }
  };
  sock.on('data', (chunk: Buffer) => {
    if (preface > 0) {
      const n = Math.min(preface, chunk.length);
      preface -= n;
      chunk = chunk.subarray(n);
    }
    reader.push(chunk);
    try {
      while (reader.next()) {
        const t = reader.type;
        if (t === FrameType.SETTINGS && (reader.flags & Flag.ACK) === 0) send(settingsAckFrame());
        else if (t === FrameType.PING && (reader.flags & Flag.ACK) === 0) send(pingFrame(reader.payload, true));
        else if (t === FrameType.HEADERS || t === FrameType.CONTINUATION) {
          if (t === FrameType.HEADERS) {
            blockStream = reader.streamId;
            let p = reader.payload;
            if ((reader.flags & Flag.PADDED) !== 0) p = p.subarray(1, p.length - (p[0] as number));
            if ((reader.flags & Flag.PRIORITY) !== 0) p = p.subarray(5);
            block = [Buffer.from(p)];
          } else block.push(Buffer.from(reader.payload));
          if ((reader.flags & Flag.END_HEADERS) !== 0) {
            const fields = dec.decode(Buffer.concat(block));
            const i = fields.names.indexOf(':path');
            request(blockStream, i >= 0 ? (fields.values[i] as string) : '/');
          }
        }
      }
    } catch {
      sock.destroy();
    }
  });
}

let proxy: TestProxy;
let upstream: net.Server;
let good: http2.Http2Server;
let closeControl: () => Promise<void>;
const sockets = new Set<net.Socket>();
const VIP = '127.0.0.63';

before(async () => {
  upstream = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    serveConnection(s);
  });
  const hostilePort = await listen(upstream);
  // A well-behaved app: another upstream, on connections of its own.
  good = http2.createServer();
  good.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end('good');
  });
  const goodPort = await listen(good);
  // Service web: /good goes to web-good, anything else to web-hostile (HTTPRoute).
  const ep = (name: string, port: number): EndpointEntry => ({
    pod: `default/${name}`,
    ip: '127.0.0.1',
    ports: { 80: port },
    ready: true,
  });
  const h2c = { ports: [{ name: 'http', port: 80, appProtocol: 'h2c' }] };
  const services = [
    service('web', VIP, [ep('hostile-1', hostilePort)], h2c),
    service('web-good', '10.96.0.21', [ep('good-1', goodPort)], h2c),
    service('web-hostile', '10.96.0.22', [ep('hostile-1', hostilePort)], h2c),
  ];
  const rule = (prefix: string, backend: string): RouteRuleEntry => ({
    matches: [{ path: { type: 'PathPrefix', value: prefix }, headers: [], queryParams: [] }],
    filters: [],
    backends: [{ name: backend, port: 80, weight: 1 }],
  });
  const route: RouteEntry = {
    kind: 'HTTPRoute',
    namespace: 'default',
    name: 'web',
    parents: [{ name: 'web', port: 80 }],
    rules: [rule('/good', 'web-good'), rule('/', 'web-hostile')],
  };
  const store = new LocalStore();
  store.replace({
    services,
    pods: [pod('hostile-1', '127.0.0.1', { meshed: false }), pod('good-1', '127.0.0.1', { meshed: false })],
    routes: [route],
  });
  const cp = await startTestControlPlane({ store });
  closeControl = () => cp.close();
  proxy = await startTestProxy(`${VIP}:80`, {
    destinationAddr: cp.addr,
    trustAnchors: cp.ca.trustAnchorPem,
    opaquePorts: '',
  });
});

after(async () => {
  await proxy?.close();
  await closeControl?.();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => upstream?.close(() => r()));
  await new Promise<void>((r) => good?.close(() => r()));
});

interface Outcome {
  status?: number;
  rstCode?: number;
  error?: string;
}

/** One request on its own client connection; what became of it (bounded: 15 s). */
function h2get(path: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const session = http2.connect(proxy.url);
    session.on('error', () => {});
    const done = (o: Outcome) => {
      clearTimeout(timer);
      session.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ error: 'no outcome within 15 s' }), 15_000);
    const req = session.request({ ':path': path });
    let status: number | undefined;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('error', (e) => done({ status, rstCode: req.rstCode, error: e.message }));
    req.resume();
    req.on('close', () => done({ status, rstCode: req.rstCode }));
  });
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`)).text();
}

/** How the client's stream must end: the proxy's 502 (nothing of an answer passed on), or a reset. */
type Expect = { status: 502 } | { status?: number; rstCode: number };

interface Case {
  path: string;
  expect: Expect;
  /** The counter that must move for the upstream side ({direction="outbound", peer="server"} added). */
  metric: string;
  labels: Record<string, string>;
}

const CASES: Case[] = [
  // A header block that decodes past the header list limit: the stream only.
  {
    path: '/hpack-bomb',
    expect: { status: 502 },
    metric: 'h2_protocol_errors_total',
    labels: { kind: 'header_list_too_large' },
  },
  // HEADERS, then CONTINUATION frames that never end the block: GOAWAY ENHANCE_YOUR_CALM.
  {
    path: '/continuation-flood',
    expect: { status: 502 },
    metric: 'h2_protocol_errors_total',
    labels: { kind: 'continuation_flood' },
  },
  // The head went to the client already: the answer is cut with a reset.
  {
    path: '/data-past-window',
    expect: { status: 200, rstCode: H2ErrorCode.INTERNAL_ERROR },
    metric: 'h2_protocol_errors_total',
    labels: { kind: 'flow_control' },
  },
  // HEADERS on a stream the proxy never opened: PROTOCOL_ERROR for the connection.
  {
    path: '/unopened-stream',
    expect: { status: 502 },
    metric: 'h2_protocol_errors_total',
    labels: { kind: 'stream_state' },
  },
  { path: '/ping-flood', expect: { status: 502 }, metric: 'h2_protocol_errors_total', labels: { kind: 'ping_flood' } },
  // An upstream's reset is passed on as the same reset (no route retries it here).
  {
    path: '/rst-every-stream',
    expect: { rstCode: H2ErrorCode.INTERNAL_ERROR },
    metric: 'h2_resets_received_total',
    labels: { code: 'INTERNAL_ERROR' },
  },
  // GOAWAY with last-stream-id 0: the stream was not processed (REFUSED_STREAM to the client, which may
  // retry it); the frames that follow on the going-away connection are not answers.
  {
    path: '/goaway-then-more',
    expect: { rstCode: H2ErrorCode.REFUSED_STREAM },
    metric: 'h2_goaways_received_total',
    labels: { code: 'NO_ERROR' },
  },
  // A PING of 7 bytes: FRAME_SIZE_ERROR for the connection.
  {
    path: '/malformed-frame',
    expect: { status: 502 },
    metric: 'h2_protocol_errors_total',
    labels: { kind: 'frame_size' },
  },
];

let baselineRssMb = 0;
/** The test process holds the proxy and the hostile server: the bound covers both (not a figure). */
const RSS_GROWTH_BOUND_MB = 256;

for (const c of CASES) {
  void test(`hostile upstream ${c.path}: the client's stream ends as it must, the proxy goes on`, async () => {
    if (baselineRssMb === 0) {
      assert.equal((await h2get('/good')).status, 200);
      baselineRssMb = process.memoryUsage().rss / 2 ** 20;
    }
    const labels = { direction: 'outbound', peer: 'server', ...c.labels };
    const before = sumMetric(await metrics(), c.metric, labels);
    // The hostile request, and a good one at the same time on another client connection.
    const [o, during] = await Promise.all([h2get(c.path), h2get('/good')]);
    if ('rstCode' in c.expect) {
      assert.equal(o.rstCode, c.expect.rstCode, JSON.stringify(o));
      if (c.expect.status !== undefined) assert.equal(o.status, c.expect.status, JSON.stringify(o));
    } else assert.deepEqual([o.status, o.rstCode], [c.expect.status, 0], JSON.stringify(o));
    assert.equal(during.status, 200, `a good request during the attack: ${JSON.stringify(during)}`);
    assert.equal((await h2get('/good')).status, 200, 'a good request after it');
    assert.ok(sumMetric(await metrics(), c.metric, labels) > before, `${c.metric} ${JSON.stringify(labels)} moved`);
    const rss = process.memoryUsage().rss / 2 ** 20;
    assert.ok(
      rss - baselineRssMb < RSS_GROWTH_BOUND_MB,
      `rss ${rss.toFixed(0)} MB from ${baselineRssMb.toFixed(0)} MB`,
    );
  });
}
