// Hostile peers against H2Connection (server role): crafted frames over loopback, and the answer RFC 9113
// asks for (RST_STREAM for stream errors, GOAWAY with the code for connection errors), with the
// connection's state (streams, queues) left bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H2Codes, H2ErrorCode } from './errors.js';
import {
  dataFrameHeader,
  Flag,
  frame,
  FRAME_HEADER_SIZE,
  FrameType,
  headersFrames,
  pingFrame,
  priorityFrame,
  rstStreamFrame,
  SettingId,
  settingsFrame,
  windowUpdateFrame,
} from './frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from './hpack.js';
import { RawPeer, serve, type TestServer } from './testkit.js';
import type { H2Connection } from './connection.js';

const enc = () => new HpackEncoder({ huffman: 'never' });

function requestFrames(e: HpackEncoder, id: number, path: string, endStream: boolean, extra?: HeaderList): Buffer {
  const l = new HeaderList().add(':method', 'POST').add(':scheme', 'http').add(':path', path).add(':authority', 'x');
  if (extra) for (let i = 0; i < extra.length; i++) l.add(extra.names[i]!, extra.values[i]!);
  return headersFrames(e.encode(l, FRAME_HEADER_SIZE), id, endStream, 16384);
}

async function setup(options = {}): Promise<{ srv: TestServer; peer: RawPeer; conn: H2Connection; e: HpackEncoder }> {
  const srv = await serve(options);
  const peer = await RawPeer.connect(srv.port);
  const conn = srv.conns[0]!;
  return { srv, peer, conn, e: enc() };
}

const isGoAway = (f: { type: number }) => f.type === FrameType.GOAWAY;
const rstOn = (id: number) => (f: { type: number; streamId: number }) =>
  f.type === FrameType.RST_STREAM && f.streamId === id;

/** The connection still answers: a PING comes back. */
async function alive(peer: RawPeer): Promise<void> {
  const data = Buffer.from('alive!!!');
  peer.send(pingFrame(data, false));
  const f = await peer.waitFor(
    (x) => x.type === FrameType.PING && (x.flags & Flag.ACK) !== 0 && x.payload.equals(data),
  );
  assert.ok(f, 'connection answers ping');
}

void test('rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs past the bound get GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { srv, peer, conn, e } = await setup({ maxResetsPerSecond: 100 });
  const parts: Buffer[] = [];
  for (let i = 0; i < 500; i++) {
    const id = 2 * i + 1;
    parts.push(requestFrames(e, id, '/hang', false), rstStreamFrame(id, H2ErrorCode.CANCEL));
  }
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal(conn.stats.errors[H2Codes.FLOOD], 1);
  assert.deepEqual(conn.stats.hostile, { rapid_reset: 1 });
  assert.ok(conn.stats.streamsOpened <= 101, `opened ${conn.stats.streamsOpened}`);
  assert.equal(conn.streamCount, 0);
  await peer.closedSocket();
  await srv.close();
});

void test('CONTINUATION flood (CVE-2024-27316): a field block without end gets GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { srv, peer, conn, e } = await setup({ maxHeaderListSize: 8192 });
  const first = requestFrames(e, 1, '/', false);
  first[4] = (first[4] as number) & ~Flag.END_HEADERS;
  const parts = [first];
  // Empty CONTINUATION frames cost no bytes: the bound on their count stops them too.
  for (let i = 0; i < 200; i++) parts.push(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(0)));
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal(conn.stats.errors[H2Codes.FIELD_BLOCK_TOO_LARGE], 1);
  await srv.close();
  // And by bytes: 100 frames of 1 kB against a block bound of 16 kB.
  const b = await setup({ maxHeaderListSize: 8192 });
  const head = requestFrames(b.e, 1, '/', false);
  head[4] = (head[4] as number) & ~Flag.END_HEADERS;
  const big = [head];
  for (let i = 0; i < 100; i++) big.push(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(1024, 0x41)));
  b.peer.send(...big);
  assert.equal(await b.peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  await b.srv.close();
});

void test('ping flood and settings flood: past the bound per second, GOAWAY ENHANCE_YOUR_CALM', async () => {
  for (const kind of ['ping', 'settings']) {
    const { srv, peer, conn } = await setup({ maxControlPerSecond: 50 });
    const parts: Buffer[] = [];
    for (let i = 0; i < 1000; i++)
      parts.push(kind === 'ping' ? pingFrame(Buffer.alloc(8, i), false) : settingsFrame([]));
    peer.send(...parts);
    assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM, kind);
    const acks = peer.frames.filter((f) => f.type === (kind === 'ping' ? FrameType.PING : FrameType.SETTINGS));
    assert.ok(acks.length <= 52, `${kind}: ${acks.length} answers`);
    assert.equal(conn.stats.errors[H2Codes.FLOOD], 1);
    assert.deepEqual(conn.stats.hostile, { [`${kind}_flood`]: 1 });
    await srv.close();
  }
});

void test('empty DATA frames flood: GOAWAY ENHANCE_YOUR_CALM', async () => {
  const { srv, peer, conn, e } = await setup({ maxEmptyFrames: 16 });
  const parts = [requestFrames(e, 1, '/echo', false)];
  for (let i = 0; i < 100; i++) parts.push(dataFrameHeader(1, 0, false));
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  assert.deepEqual(conn.stats.hostile, { empty_frame_flood: 1 });
  await srv.close();
});

void test('reset flood (CVE-2019-9514): frames that each make us reset a stream, past the bound, get GOAWAY', async () => {
  const { srv, peer, conn } = await setup({ maxStreamErrorsPerSecond: 100 });
  const parts: Buffer[] = [];
  // A stream that depends on itself is a stream error (RFC 9113 section 5.3.1): one RST_STREAM each.
  for (let i = 0; i < 1000; i++) parts.push(priorityFrame(2 * i + 1, 2 * i + 1, false, 16));
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  const rsts = peer.frames.filter((f) => f.type === FrameType.RST_STREAM).length;
  assert.ok(rsts <= 100, `${rsts} resets sent`);
  assert.equal(conn.stats.resetsSent[H2ErrorCode.PROTOCOL_ERROR], rsts);
  assert.deepEqual(conn.stats.hostile, { reset_flood: 1 });
  await srv.close();
});

void test('zero window: the peer does not read; queued bytes stay bounded, and we stop taking its upload', async () => {
  const { srv, peer, conn, e } = await setup({ maxQueuedPerStream: 65536 });
  // The peer grants us no window at all, then uploads to /echo as fast as its window lets it.
  peer.send(settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0]]));
  peer.send(requestFrames(e, 1, '/echo', false));
  const chunk = Buffer.alloc(16384, 0x61);
  for (let i = 0; i < 5; i++) peer.send(dataFrameHeader(1, 16384, false), chunk);
  await alive(peer);
  const s = [...(conn as unknown as { streams: Map<number, import('./stream.js').H2Stream> }).streams.values()][0]!;
  // The echo handler's write said stop at the bound (the 4th chunk), so it stopped returning window:
  // what was still in the peer's window (one chunk) is all the queue can grow by.
  assert.equal(s.queued, 5 * 16384);
  assert.ok(s.queued <= 65536 + 65535);
  assert.equal(s.wantWritable, true);
  assert.equal(s.unconsumed, 2 * 16384);
  assert.equal(s.flow.recvWindow, 65535 - 5 * 16384 + 32768);
  // One more chunk is DATA past the window: a stream FLOW_CONTROL_ERROR, the connection lives.
  peer.send(dataFrameHeader(1, 16384, false), chunk);
  assert.ok(await peer.waitFor(rstOn(1)));
  assert.equal(peer.frames.find(rstOn(1))?.payload.readUInt32BE(0), H2ErrorCode.FLOW_CONTROL_ERROR);
  assert.equal(s.queued, 0); // the reset dropped the queue
  await alive(peer);
  await srv.close();
});

void test('DATA past the connection window: GOAWAY FLOW_CONTROL_ERROR', async () => {
  const { srv, peer, e } = await setup({ streamWindow: 1 << 20, connectionWindow: 65535 });
  const chunk = Buffer.alloc(16384);
  const parts = [requestFrames(e, 1, '/hold', false)];
  for (let i = 0; i < 5; i++) parts.push(dataFrameHeader(1, 16384, false), chunk);
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.FLOW_CONTROL_ERROR);
  await srv.close();
});

void test('HPACK bomb: a small block that decodes past the header list limit gets a 431 on that stream only', async () => {
  const { srv, peer, conn } = await setup({ maxHeaderListSize: 16384 });
  // One 4 kB value indexed once, then referenced 100 times: 400 kB of fields from about 4.2 kB of block.
  const raw = [0x40, 0x05, ...Buffer.from('x-big'), 0x7f, 0xa1, 0x1e, ...Buffer.alloc(4000, 0x61)];
  const base = new HpackEncoder({ huffman: 'never' }).encode(
    new HeaderList().add(':method', 'GET').add(':scheme', 'http').add(':path', '/').add(':authority', 'x'),
  );
  const block = Buffer.concat([Buffer.alloc(FRAME_HEADER_SIZE), base, Buffer.from(raw), Buffer.alloc(100, 0x80 | 62)]);
  peer.send(headersFrames(block, 1, true, 16384));
  const resp = await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1);
  const dec = new HpackDecoder();
  assert.equal(dec.decode(resp!.payload).values[0], '431');
  assert.equal(conn.stats.errors[H2Codes.HEADER_LIST_TOO_LARGE], 1);
  // The decoder kept its table in step: the next request on the same connection is fine. It inserts
  // :authority (now index 62) and uses x-big (now 63) once, within the limit.
  const e2 = Buffer.concat([
    Buffer.alloc(FRAME_HEADER_SIZE),
    Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x78, 0x80 | 63]),
  ]);
  peer.send(headersFrames(e2, 3, true, 16384));
  const ok = await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 3);
  assert.equal(dec.decode(ok!.payload).values[0], '200');
  await srv.close();
});

void test('oversized and invalid frames: GOAWAY with the code RFC 9113 gives', async () => {
  const cases: [string, (e: HpackEncoder) => Buffer, number][] = [
    ['frame over max frame size', () => frame(FrameType.PING, 0, 0, Buffer.alloc(20000)), H2ErrorCode.FRAME_SIZE_ERROR],
    ['ping of 7 bytes', () => frame(FrameType.PING, 0, 0, Buffer.alloc(7)), H2ErrorCode.FRAME_SIZE_ERROR],
    ['settings on a stream', () => frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0)), H2ErrorCode.PROTOCOL_ERROR],
    [
      'window_update of 0 on the connection',
      () => frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(4)),
      H2ErrorCode.PROTOCOL_ERROR,
    ],
    ['connection window overflow', () => windowUpdateFrame(0, 0x7fffffff), H2ErrorCode.FLOW_CONTROL_ERROR],
    [
      'push_promise from a client',
      () => frame(FrameType.PUSH_PROMISE, 4, 1, Buffer.alloc(4)),
      H2ErrorCode.PROTOCOL_ERROR,
    ],
    [
      'continuation without headers',
      () => frame(FrameType.CONTINUATION, 4, 1, Buffer.alloc(0)),
      H2ErrorCode.PROTOCOL_ERROR,
    ],
    [
      'data on an idle stream',
      () => Buffer.concat([dataFrameHeader(9, 1, false), Buffer.alloc(1)]),
      H2ErrorCode.PROTOCOL_ERROR,
    ],
    ['rst_stream on an idle stream', () => rstStreamFrame(9, 0), H2ErrorCode.PROTOCOL_ERROR],
    ['headers on an even (server) stream', (e) => requestFrames(e, 2, '/', true), H2ErrorCode.PROTOCOL_ERROR],
    [
      'a broken hpack block',
      () => frame(FrameType.HEADERS, 5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])),
      H2ErrorCode.COMPRESSION_ERROR,
    ],
    [
      'settings max_frame_size too small',
      () => settingsFrame([[SettingId.MAX_FRAME_SIZE, 100]]),
      H2ErrorCode.PROTOCOL_ERROR,
    ],
  ];
  for (const [what, make, code] of cases) {
    const { srv, peer } = await setup();
    peer.send(make(enc()));
    assert.equal(await peer.goAwayCode(), code, what);
    await peer.closedSocket();
    await srv.close();
  }
});

void test('stream id going backwards: GOAWAY PROTOCOL_ERROR naming the last stream processed', async () => {
  const { srv, peer, e } = await setup();
  peer.send(requestFrames(e, 5, '/', true));
  await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 5);
  peer.send(requestFrames(e, 3, '/', true));
  const g = await peer.waitFor(isGoAway);
  assert.equal(g?.payload.readUInt32BE(4), H2ErrorCode.PROTOCOL_ERROR);
  assert.equal(g?.payload.readUInt32BE(0), 5);
  await srv.close();
});

void test('headers after END_STREAM, and trailers without it: RST_STREAM, the connection lives', async () => {
  const { srv, peer, conn, e } = await setup();
  peer.send(requestFrames(e, 1, '/hang', true));
  await alive(peer);
  peer.send(requestFrames(e, 1, '/hang', true)); // the peer already ended stream 1
  const r = await peer.waitFor(rstOn(1));
  assert.equal(r?.payload.readUInt32BE(0), H2ErrorCode.STREAM_CLOSED);
  // Trailers must carry END_STREAM (RFC 9113 section 8.1).
  peer.send(requestFrames(e, 3, '/hang', false), requestFrames(e, 3, '/hang', false));
  const r3 = await peer.waitFor(rstOn(3));
  assert.equal(r3?.payload.readUInt32BE(0), H2ErrorCode.PROTOCOL_ERROR);
  // DATA after END_STREAM.
  peer.send(requestFrames(e, 5, '/hang', true), dataFrameHeader(5, 0, true));
  assert.equal((await peer.waitFor(rstOn(5)))?.payload.readUInt32BE(0), H2ErrorCode.STREAM_CLOSED);
  await alive(peer);
  assert.equal(conn.streamCount, 0);
  await srv.close();
});

void test('MAX_CONCURRENT_STREAMS: a stream over our limit is refused, and after our GOAWAY every new one', async () => {
  const { srv, peer, conn, e } = await setup({ maxConcurrentStreams: 2 });
  peer.send(requestFrames(e, 1, '/hang', true), requestFrames(e, 3, '/hang', true), requestFrames(e, 5, '/', true));
  assert.equal((await peer.waitFor(rstOn(5)))?.payload.readUInt32BE(0), H2ErrorCode.REFUSED_STREAM);
  conn.goaway();
  const g = await peer.waitFor(isGoAway);
  assert.equal(g?.payload.readUInt32BE(0), 5);
  peer.send(requestFrames(e, 7, '/', true));
  assert.equal((await peer.waitFor(rstOn(7)))?.payload.readUInt32BE(0), H2ErrorCode.REFUSED_STREAM);
  assert.equal(conn.stats.streamsRefused, 2);
  // Streams 1 and 3 are still served: reset them, and the drained connection ends.
  peer.send(rstStreamFrame(1, H2ErrorCode.CANCEL), rstStreamFrame(3, H2ErrorCode.CANCEL));
  await peer.closedSocket();
  await srv.close();
});

void test('settings not acknowledged in time: GOAWAY SETTINGS_TIMEOUT', async () => {
  const srv = await serve({ settingsTimeoutMs: 300 });
  const peer = await RawPeer.connect(srv.port, [], false);
  assert.equal(await peer.goAwayCode(3000), H2ErrorCode.SETTINGS_TIMEOUT);
  await srv.close();
});

void test('a bad preface: GOAWAY PROTOCOL_ERROR and close', async () => {
  const srv = await serve();
  const peer = await RawPeer.connect(srv.port, [], false);
  const other = await RawPeer.connect(srv.port, [], false);
  other.socket.destroy();
  peer.destroy();
  const raw = await import('node:net');
  const s = raw.connect(srv.port, '127.0.0.1');
  s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  await new Promise((r) => s.on('close', r));
  const all = Buffer.concat(got);
  // Our SETTINGS, then the GOAWAY.
  const goaway = all.indexOf(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 9);
  assert.ok(all.includes(Buffer.from([FrameType.GOAWAY])), 'goaway sent');
  assert.ok(goaway > 0 || all.length > 9);
  await srv.close();
});

void test('a peer that does not read: the socket holds about the high water mark, the body waits by reference', async () => {
  const { srv, peer, conn, e } = await setup({ socketHighWater: 65536 });
  // Windows as large as the protocol allows, then the peer stops reading.
  peer.send(settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff]]), windowUpdateFrame(0, 0x7fffffff - 65535));
  await alive(peer);
  peer.socket.pause();
  peer.send(requestFrames(e, 1, '/size/20000000', true));
  await new Promise((r) => setTimeout(r, 500));
  const s = [...(conn as unknown as { streams: Map<number, import('./stream.js').H2Stream> }).streams.values()][0]!;
  assert.ok(conn.socket.writableLength <= 2 * 65536 + 2 * 16384, `socket holds ${conn.socket.writableLength}`);
  assert.ok(s.queued > 10_000_000, `queued ${s.queued}`); // still in the handler's own buffer
  // Reading again, the peer gets all of it.
  peer.socket.resume();
  await peer.waitFor((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0, 20_000);
  const got = peer.frames.filter((f) => f.type === FrameType.DATA).reduce((n, f) => n + f.payload.length, 0);
  assert.equal(got, 20_000_000);
  await srv.close();
});

void test('keep-alive: an unanswered PING ends the connection; idle timeout drains with GOAWAY', async () => {
  const srv = await serve({ keepAliveMs: 200, pingTimeoutMs: 200 });
  const peer = await RawPeer.connect(srv.port);
  const ping = await peer.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) === 0, 5000);
  assert.ok(ping, 'server pings a quiet peer');
  assert.equal(await peer.goAwayCode(5000), H2ErrorCode.NO_ERROR);
  const err = (await srv.handlers[0]!.closed) as { code?: string } | undefined;
  assert.equal(err?.code, H2Codes.PING_TIMEOUT);
  await srv.close();
  const idle = await serve({ idleTimeoutMs: 200 });
  const p2 = await RawPeer.connect(idle.port);
  assert.equal(await p2.goAwayCode(5000), H2ErrorCode.NO_ERROR);
  await p2.closedSocket();
  assert.equal(await idle.handlers[0]!.closed, undefined);
  await idle.close();
});

void test('malformed requests (RFC 9113 section 8.1.1): RST_STREAM PROTOCOL_ERROR, the handler never sees them', async () => {
  const { srv, peer, conn, e } = await setup();
  const bad = (pairs: [string, string][]) => new HeaderList().add(pairs[0]![0], pairs[0]![1]);
  peer.send(
    requestFrames(e, 1, '/', true, bad([['X-Upper', 'a']])),
    requestFrames(e, 3, '/', true, bad([['transfer-encoding', 'chunked']])),
    // content-length says 10, the body is 5 bytes.
    requestFrames(e, 5, '/', false, bad([['content-length', '10']])),
    dataFrameHeader(5, 5, true),
    Buffer.alloc(5),
    // content-length says 2, the body is 5 bytes (past it at once).
    requestFrames(e, 7, '/', false, bad([['content-length', '2']])),
    dataFrameHeader(7, 5, false),
    Buffer.alloc(5),
  );
  for (const id of [1, 3, 5, 7]) {
    assert.equal((await peer.waitFor(rstOn(id)))?.payload.readUInt32BE(0), H2ErrorCode.PROTOCOL_ERROR, `stream ${id}`);
  }
  assert.equal(conn.stats.errors[H2Codes.MALFORMED], 4);
  // A body that matches its content-length is served.
  peer.send(
    requestFrames(e, 9, '/', false, bad([['content-length', '5']])),
    dataFrameHeader(9, 5, true),
    Buffer.alloc(5),
  );
  assert.ok(await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 9));
  await alive(peer);
  await srv.close();
});

void test('streams over our limit, opened for ever: refusals count in the bound, then GOAWAY', async () => {
  const { srv, peer, conn, e } = await setup({ maxConcurrentStreams: 1, maxStreamErrorsPerSecond: 50 });
  const parts = [requestFrames(e, 1, '/hang', true)];
  for (let i = 1; i < 300; i++) parts.push(requestFrames(e, 2 * i + 1, '/', true));
  peer.send(...parts);
  assert.equal(await peer.goAwayCode(), H2ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal(conn.stats.streamsRefused, 50);
  await srv.close();
});

void test('zero window for the stall timeout: the stream is reset with CANCEL, the connection lives', async () => {
  const { srv, peer, conn, e } = await setup({ stallTimeoutMs: 1000 });
  // The peer grants no stream window, then asks for a body it will never let us send.
  peer.send(settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0]]), requestFrames(e, 1, '/size/100000', true));
  const r = await peer.waitFor(rstOn(1), 10_000);
  assert.equal(r?.payload.readUInt32BE(0), H2ErrorCode.CANCEL);
  assert.equal(conn.stats.errors[H2Codes.SEND_STALLED], 1);
  assert.deepEqual(conn.stats.hostile, { zero_window: 1 });
  assert.equal(conn.streamCount, 0);
  await alive(peer);
  // A stream that moves, however slowly, is not stalled: one byte of window every 300 ms.
  peer.send(requestFrames(e, 3, '/size/8', true));
  for (let i = 0; i < 8; i++) {
    await new Promise((res) => setTimeout(res, 300));
    peer.send(windowUpdateFrame(3, 1));
  }
  const end = await peer.waitFor(
    (f) => f.type === FrameType.DATA && f.streamId === 3 && (f.flags & Flag.END_STREAM) !== 0,
  );
  assert.ok(end, 'the slow stream ends');
  assert.equal(conn.stats.errors[H2Codes.SEND_STALLED], 1);
  await srv.close();
});

void test('a peer that reads nothing for the stall timeout: the connection ends', async () => {
  const { srv, peer, conn, e } = await setup({ socketHighWater: 65536, stallTimeoutMs: 1000 });
  peer.send(settingsFrame([[SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff]]), windowUpdateFrame(0, 0x7fffffff - 65535));
  await alive(peer);
  peer.socket.pause();
  peer.send(requestFrames(e, 1, '/size/20000000', true));
  const closed = await srv.handlers[0]!.closed;
  assert.equal((closed as { code?: string } | undefined)?.code, H2Codes.SEND_STALLED);
  assert.deepEqual(conn.stats.hostile, { slow_read: 1 });
  await srv.close();
});
