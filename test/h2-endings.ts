// Every way a gRPC answer can end, as an upstream can make it end, and what a client behind the proxy
// must see for each: the proxy-side tests (routed and not) share this upstream and these checks.
// - startEarlyServer: a server that answers in full (trailers included) before the request has ended
//   and resets with NO_ERROR in the same write, as the gRPC C core does for unary calls (RFC 9113
//   section 8.1); the client must still get the trailers. A proxy that passes the reset on in the turn
//   it sent the trailers loses them (Node drops trailers queued on a stream reset in the same turn):
//   that cut grpc-status off answers between two proxies. Written with raw frames, so that the answer
//   and the reset always arrive together.
// - /no-status, /no-status-head: a 200 answer without grpc-status (trailers, or trailers-only head):
//   the client gets INTERNAL from the proxy, and it counts as a failure.
// - /lost: the upstream's connection dies mid-answer: the client gets UNAVAILABLE, a failure.
// - /reset: the upstream resets mid-answer: the client's stream is reset with the same code, a failure.
import assert from 'node:assert/strict';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import { listen, metricValue } from './helpers.js';
import type { RunningProxy } from '../src/proxy/main.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;
const GRPC = { 'content-type': 'application/grpc' };

export interface EndingsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A raw h2c server that ends its answers as the path says (see the file's head). */
export async function startEndingsServer(): Promise<EndingsServer> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  // The raw sockets, to cut a connection as a network would (a session's own socket may not be touched).
  const sockets = new WeakMap<object, net.Socket>();
  let lastSocket: net.Socket | undefined;
  server.prependListener('connection', (sock: net.Socket) => (lastSocket = sock));
  server.on('session', (s) => {
    if (lastSocket !== undefined) sockets.set(s, lastSocket);
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
  });
  server.on('stream', (stream: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    const path = h[':path'];
    stream.resume();
    if (path === '/no-status-head') {
      stream.respond({ ':status': 200, ...GRPC }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, ...GRPC }, { waitForTrailers: true });
    if (path === '/no-status') {
      stream.on('wantTrailers', () => stream.sendTrailers({}));
      stream.end(Buffer.from([0, 0, 0, 0, 1, 0x41]));
    } else if (path === '/lost') {
      const sock = stream.session !== undefined ? sockets.get(stream.session) : undefined;
      stream.write(Buffer.from([0, 0, 0, 0, 1, 0x41]), () => setTimeout(() => sock?.destroy(), 20));
    } else if (path === '/reset') {
      stream.on('wantTrailers', () => stream.close(NGHTTP2_INTERNAL_ERROR));
      stream.end(Buffer.from([0, 0, 0, 0, 1, 0x41]));
    } else {
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 1, 0x41]));
    }
  });
  const port = await listen(server as unknown as net.Server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One HTTP/2 frame (RFC 9113 section 4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK block of literal fields without indexing, no Huffman (RFC 7541 section 6.2.2); names and
 *  values under 127 bytes. */
function literalBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields)
    parts.push(Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value));
  return Buffer.concat(parts);
}

const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PING = 6;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

/** The early answerer (see the file's head): on a stream's first DATA, one write holds the response
 *  head, the message echoed, the trailers (grpc-status 0, x-early: yes) and RST_STREAM(NO_ERROR). */
export async function startEarlyServer(): Promise<EndingsServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.setNoDelay(true);
    sock.write(frame(SETTINGS, 0, 0, Buffer.alloc(0)));
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    const answered = new Set<number>();
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!prefaceSeen) {
        if (buf.length < 24) return;
        buf = buf.subarray(24);
        prefaceSeen = true;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3] as number;
        const flags = buf[4] as number;
        const id = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === SETTINGS && (flags & ACK) === 0) sock.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        else if (type === PING && (flags & ACK) === 0) sock.write(frame(PING, ACK, 0, payload));
        else if (type === DATA && payload.length > 0 && !answered.has(id)) {
          answered.add(id);
          const head = Buffer.concat([
            Buffer.from([0x88]) /* :status 200, static index 8 */,
            literalBlock([['content-type', 'application/grpc']]),
          ]);
          const trailers = literalBlock([
            ['grpc-status', '0'],
            ['x-early', 'yes'],
          ]);
          const rst = Buffer.alloc(4); // NO_ERROR
          sock.write(
            Buffer.concat([
              frame(HEADERS, END_HEADERS, id, head),
              frame(DATA, 0, id, payload),
              frame(HEADERS, END_HEADERS | END_STREAM, id, trailers),
              frame(RST_STREAM, 0, id, rst),
            ]),
          );
        }
      }
    });
  });
  const port = await listen(server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Ending {
  readonly head: IncomingHttpHeaders | undefined;
  readonly trailers: IncomingHttpHeaders | undefined;
  readonly rstCode: number | undefined;
}

/** One gRPC-shaped call; the request's END_STREAM is held back `holdMs` after its message. */
function call(client: ClientHttp2Session, path: string, holdMs = 0): Promise<Ending> {
  return new Promise((resolve) => {
    const req = client.request({ ':method': 'POST', ':path': path, te: 'trailers', ...GRPC });
    let head: IncomingHttpHeaders | undefined;
    let trailers: IncomingHttpHeaders | undefined;
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('error', () => {});
    req.resume();
    req.on('close', () => resolve({ head, trailers, rstCode: req.rstCode }));
    req.write(Buffer.from([0, 0, 0, 0, 1, 0x42]));
    if (holdMs === 0) req.end();
    else setTimeout(() => !req.closed && req.end(), holdMs);
  });
}

/** Calls through `client`, which reaches the early answerer: every call gets its trailers, though its
 *  request ends only after the answer and the server's reset (20 one after the other, then 50 at once). */
export async function checkEarly(client: ClientHttp2Session): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const e = await call(client, '/early', 30);
    assert.equal(
      e.trailers?.['grpc-status'],
      '0',
      `/early #${i}: trailers ${JSON.stringify(e.trailers)}, reset ${e.rstCode}`,
    );
    assert.equal(e.trailers?.['x-early'], 'yes');
  }
  const many = await Promise.all(Array.from({ length: 50 }, () => call(client, '/early', 30)));
  assert.deepEqual(
    many.map((e) => e.trailers?.['grpc-status']),
    many.map(() => '0'),
  );
}

/** Runs every other ending through `client` (which reaches the endings server through `proxy`) and
 *  checks what the client saw and what the proxy counted in `metric` (a response_total family) under `labels`. */
export async function checkEndings(
  client: ClientHttp2Session,
  proxy: RunningProxy,
  metric: string,
  labels: Record<string, string>,
): Promise<void> {
  const noStatus = await call(client, '/no-status');
  assert.equal(noStatus.trailers?.['grpc-status'], '13', JSON.stringify(noStatus));
  assert.match(String(noStatus.trailers?.['grpc-message']), /outrigger proxy: .*without grpc-status/);
  const noStatusHead = await call(client, '/no-status-head');
  assert.equal(noStatusHead.head?.['grpc-status'], '13', JSON.stringify(noStatusHead));

  const lost = await call(client, '/lost');
  assert.equal(lost.trailers?.['grpc-status'], '14', JSON.stringify(lost));
  assert.match(String(lost.trailers?.['grpc-message']), /closed mid-response/);

  const reset = await call(client, '/reset');
  assert.equal(reset.rstCode, NGHTTP2_INTERNAL_ERROR, JSON.stringify(reset));

  const ok = await call(client, '/ok');
  assert.equal(ok.trailers?.['grpc-status'], '0');

  const count = (m: Record<string, string>) => metricValue(proxy, metric, { ...labels, ...m });
  assert.equal(await count({ grpc_status_code: '0', classification: 'success' }), 1);
  // Two without a status, and the reset (a client derives INTERNAL from it).
  assert.equal(await count({ grpc_status_code: '13', classification: 'failure' }), 3);
  assert.equal(await count({ grpc_status_code: '14', classification: 'failure' }), 1);
  assert.equal(await count({ classification: 'failure' }), 4);
  const errors = (error: string) =>
    metricValue(proxy, 'request_errors_total', { direction: labels.direction ?? 'outbound', error });
  assert.equal(await errors('grpc_status_missing'), 2);
  assert.equal(await errors('upstream_protocol'), 1);
}
