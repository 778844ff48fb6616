import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H2Codes, H2Error, H2ErrorCode, h2ErrorCodeName } from './errors.js';
import {
  checkPriority,
  continuationFragment,
  dataFrameHeader,
  dataPayload,
  FieldBlockAssembler,
  Flag,
  frame,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  type FrameView,
  goAwayFrame,
  headersFragment,
  headersFrames,
  isKnownFrameType,
  parseGoAway,
  parseSettings,
  pingData,
  pingFrame,
  PREFACE,
  priorityFrame,
  refusePushPromise,
  rstStreamCode,
  rstStreamFrame,
  SettingId,
  Settings,
  settingsAckFrame,
  settingsFrame,
  windowIncrement,
  windowUpdateFrame,
} from './frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from './hpack.js';

interface Seen {
  type: number;
  flags: number;
  streamId: number;
  payload: string;
}

/** Reads `chunks` in order and returns every frame; `zeroCopy` counts payloads that are views of a chunk. */
function readAll(chunks: Buffer[], options: ConstructorParameters<typeof FrameReader>[0] = {}) {
  const r = new FrameReader(options);
  const frames: Seen[] = [];
  let zeroCopy = 0;
  for (const c of chunks) {
    r.push(c);
    while (r.next()) {
      frames.push({ type: r.type, flags: r.flags, streamId: r.streamId, payload: r.payload.toString('hex') });
      if (r.payload.length > 0 && r.payload.buffer === c.buffer) zeroCopy++;
    }
  }
  return { frames, zeroCopy };
}

/** A frame whose payload sits in the middle of a larger buffer, as it does in a socket chunk. */
const view = (type: number, flags: number, streamId: number, payload: Buffer | string = ''): FrameView => {
  const p = typeof payload === 'string' ? Buffer.from(payload.replace(/\s+/g, ''), 'hex') : payload;
  const data = Buffer.concat([Buffer.from('junk'), p, Buffer.from('more junk')]);
  return { type, flags, streamId, length: p.length, data, offset: 4, payload: data.subarray(4, 4 + p.length) };
};

const caught = (fn: () => unknown, what = ''): H2Error => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof H2Error, String(e));
    return e;
  }
  assert.fail(`no error ${what}`);
};

const SETTINGS0 = settingsFrame([]);

void test('every frame type, written by our writers and read back by the reader and the payload checks', () => {
  const enc = new HpackEncoder();
  const fields = new HeaderList().add(':method', 'POST').add(':path', '/pkg.Service/Method').add('te', 'trailers');
  const headers = headersFrames(enc.encode(fields, FRAME_HEADER_SIZE), 1, false, 16384);
  const data = Buffer.from('hello, world');
  const stream = Buffer.concat([
    PREFACE,
    settingsFrame([
      [SettingId.INITIAL_WINDOW_SIZE, 1 << 20],
      [SettingId.MAX_FRAME_SIZE, 32768],
      [0x99, 7],
    ]),
    settingsAckFrame(),
    headers,
    dataFrameHeader(1, data.length, true),
    data,
    priorityFrame(3, 1, true, 256),
    rstStreamFrame(1, H2ErrorCode.CANCEL),
    pingFrame(Buffer.from('01234567'), false),
    pingFrame(Buffer.from('01234567'), true),
    goAwayFrame(7, H2ErrorCode.ENHANCE_YOUR_CALM, Buffer.from('calm down')),
    windowUpdateFrame(0, 1000),
    windowUpdateFrame(1, 2000),
    frame(0xfa, 0xff, 5, Buffer.from('extension')),
  ]);
  const r = new FrameReader({ expectPreface: true });
  r.push(stream);
  const settings = new Settings();
  const types: number[] = [];
  while (r.next()) {
    types.push(r.type);
    switch (r.type) {
      case FrameType.SETTINGS:
        if (!parseSettings(r, settings, false)) {
          assert.equal(settings.initialWindowSize, 1 << 20);
          assert.equal(settings.maxFrameSize, 32768);
        }
        break;
      case FrameType.HEADERS: {
        assert.equal(r.streamId, 1);
        assert.equal(r.flags, Flag.END_HEADERS);
        const got = new HpackDecoder().decode(headersFragment(r));
        assert.deepEqual(got.names, fields.names);
        assert.deepEqual(got.values, fields.values);
        break;
      }
      case FrameType.DATA:
        assert.equal(r.flags, Flag.END_STREAM);
        assert.equal(dataPayload(r).toString(), 'hello, world');
        assert.equal(r.payload.buffer, stream.buffer); // a view of the chunk, not a copy
        break;
      case FrameType.PRIORITY:
        checkPriority(r);
        assert.equal(r.payload.toString('hex'), '80000001ff');
        break;
      case FrameType.RST_STREAM:
        assert.equal(rstStreamCode(r), H2ErrorCode.CANCEL);
        break;
      case FrameType.PING:
        assert.equal(pingData(r).toString(), '01234567');
        break;
      case FrameType.GOAWAY: {
        const g = parseGoAway(r);
        assert.deepEqual([g.lastStreamId, g.errorCode, g.debugData.toString()], [7, 0xb, 'calm down']);
        break;
      }
      case FrameType.WINDOW_UPDATE:
        assert.equal(windowIncrement(r), r.streamId === 0 ? 1000 : 2000);
        break;
      default:
        assert.equal(isKnownFrameType(r.type), false);
        assert.equal(r.payload.toString(), 'extension');
    }
  }
  assert.deepEqual(types, [4, 4, 1, 0, 2, 3, 6, 6, 7, 8, 8, 0xfa]);
  assert.equal(settings.lowestHeaderTableSize, 4096);
});

void test('padded DATA and HEADERS with priority fields give their bare payloads', () => {
  assert.equal(dataPayload(view(0, Flag.PADDED, 1, '03 616263 000000')).toString(), 'abc');
  assert.equal(dataPayload(view(0, Flag.PADDED, 1, '00 616263')).toString(), 'abc');
  assert.equal(dataPayload(view(0, Flag.PADDED, 1, '00')).length, 0);
  const h = view(1, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS, 3, '02 80000001 0f 82 0000');
  assert.equal(headersFragment(h).toString('hex'), '82');
  assert.equal(headersFragment(view(1, Flag.PRIORITY, 3, '00000001 0f 8286')).toString('hex'), '8286');
  assert.equal(continuationFragment(view(9, 0, 3, '84')).toString('hex'), '84');
});

void test('a large field block goes out as HEADERS + CONTINUATION in one buffer and comes back whole', () => {
  const enc = new HpackEncoder({ huffman: 'never' });
  const fields = new HeaderList();
  for (let i = 0; i < 40; i++) fields.add(`x-field-${i}`, 'v'.repeat(1000));
  const block = enc.encode(fields, FRAME_HEADER_SIZE);
  const small = headersFrames(enc.encode(new HeaderList().add(':status', '200'), FRAME_HEADER_SIZE), 1, true, 16384);
  assert.equal(small.toString('hex'), '000001' + '01' + '05' + '00000001' + '88'); // framed in place
  const out = headersFrames(block, 5, true, 16384);
  const size = block.length - FRAME_HEADER_SIZE;
  assert.equal(out.length, size + Math.ceil(size / 16384) * FRAME_HEADER_SIZE);
  const { frames } = readAll([SETTINGS0, out]);
  const types = frames.slice(1).map((f) => [f.type, f.flags, f.streamId]);
  assert.deepEqual(types, [
    [1, Flag.END_STREAM, 5],
    [9, 0, 5],
    [9, Flag.END_HEADERS, 5],
  ]);
  const asm = new FieldBlockAssembler(65536);
  const parts = frames.slice(1).map((f) => Buffer.from(f.payload, 'hex'));
  assert.equal(asm.start(parts[0]!, false), null);
  assert.equal(asm.add(parts[1]!, false), null);
  const whole = asm.add(parts[2]!, true)!;
  assert.deepEqual(new HpackDecoder().decode(whole).values, fields.values);
  // A block in one frame is handed back as it is.
  const one = Buffer.from('82', 'hex');
  assert.equal(asm.start(one, true), one);
  // Too many bytes is a connection error: the HPACK state cannot be kept without decoding the block.
  const small2 = new FieldBlockAssembler(100);
  small2.start(Buffer.alloc(60), false);
  const e = caught(() => small2.add(Buffer.alloc(60), false));
  const calm = [H2Codes.FIELD_BLOCK_TOO_LARGE, H2ErrorCode.ENHANCE_YOUR_CALM, 'connection'];
  assert.deepEqual([e.code, e.h2Code, e.scope], calm);
  // So is a flood of empty CONTINUATION frames.
  const flood = new FieldBlockAssembler(100);
  flood.start(Buffer.alloc(1), false);
  assert.equal(
    caught(() => {
      for (;;) flood.add(Buffer.alloc(0), false);
    }).code,
    H2Codes.FIELD_BLOCK_TOO_LARGE,
  );
});

void test('a stream of frames cut at every offset, or byte by byte, reads as the same frames', () => {
  const stream = Buffer.concat([
    PREFACE,
    settingsFrame([[SettingId.MAX_CONCURRENT_STREAMS, 100]]),
    frame(FrameType.HEADERS, 0, 1, Buffer.from('8286')),
    frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, Buffer.from('84')),
    dataFrameHeader(1, 0, false),
    dataFrameHeader(1, 20, true),
    Buffer.alloc(20, 7),
    pingFrame(Buffer.alloc(8, 1), false),
    frame(0x20, 0, 0),
    windowUpdateFrame(0, 1),
    frame(FrameType.DATA, Flag.PADDED, 3, Buffer.from('0261626300', 'hex')),
  ]);
  const whole = readAll([stream], { expectPreface: true });
  assert.equal(whole.frames.length, 9);
  assert.equal(whole.zeroCopy, 7); // every non-empty payload is a view of the one chunk
  for (let i = 0; i <= stream.length; i++) {
    const cut = readAll([stream.subarray(0, i), stream.subarray(i)], { expectPreface: true });
    assert.deepEqual(cut.frames, whole.frames, `cut at ${i}`);
    for (let j = i; j <= stream.length; j += 7) {
      const three = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
      assert.deepEqual(readAll(three, { expectPreface: true }).frames, whole.frames, `cut at ${i} and ${j}`);
    }
  }
  const bytes = [...stream].map((b) => Buffer.from([b]));
  assert.deepEqual(readAll(bytes, { expectPreface: true }).frames, whole.frames);
});

void test('reader errors: frame size, preface, first frame, CONTINUATION out of place', () => {
  const read =
    (chunks: Buffer[], options = {}) =>
    () =>
      readAll(chunks, options);
  const big = frame(FrameType.DATA, 0, 1, Buffer.alloc(16385));
  let e = caught(read([SETTINGS0, big]));
  assert.deepEqual([e.code, e.h2Code, e.scope], [H2Codes.FRAME_SIZE, H2ErrorCode.FRAME_SIZE_ERROR, 'connection']);
  assert.equal(readAll([SETTINGS0, big], { maxFrameSize: 16385 }).frames.length, 2);
  // Only the header is needed to refuse it: the payload need not have arrived.
  e = caught(read([SETTINGS0, big.subarray(0, FRAME_HEADER_SIZE)]));
  assert.equal(e.code, H2Codes.FRAME_SIZE);

  e = caught(read([Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n')], { expectPreface: true }));
  assert.deepEqual([e.code, e.h2Code, e.scope], [H2Codes.BAD_PREFACE, H2ErrorCode.PROTOCOL_ERROR, 'connection']);
  e = caught(read([PREFACE.subarray(0, 10), Buffer.from('x')], { expectPreface: true }));
  assert.equal(e.code, H2Codes.BAD_PREFACE);

  e = caught(read([pingFrame(Buffer.alloc(8), false)]));
  assert.deepEqual([e.code, e.h2Code], [H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR]);
  assert.equal(caught(read([settingsAckFrame()])).code, H2Codes.PROTOCOL);

  const open = frame(FrameType.HEADERS, 0, 1, Buffer.from('82', 'hex'));
  for (const [what, next] of [
    ['another frame', pingFrame(Buffer.alloc(8), false)],
    ['continuation of another stream', frame(FrameType.CONTINUATION, Flag.END_HEADERS, 3)],
    ['headers', frame(FrameType.HEADERS, Flag.END_HEADERS, 3)],
    ['an unknown frame', frame(0xfa, 0, 0)],
  ] as const) {
    e = caught(read([SETTINGS0, open, next]));
    assert.deepEqual([e.code, e.h2Code, e.scope], [H2Codes.PROTOCOL, H2ErrorCode.PROTOCOL_ERROR, 'connection'], what);
  }
  e = caught(read([SETTINGS0, frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1)]));
  assert.equal(e.code, H2Codes.PROTOCOL);
  // PUSH_PROMISE opens a field block too, though we refuse it when we see it.
  const push = frame(FrameType.PUSH_PROMISE, 0, 1, Buffer.alloc(4));
  e = caught(read([SETTINGS0, push, pingFrame(Buffer.alloc(8), false)]));
  assert.equal(e.code, H2Codes.PROTOCOL);
});

void test('payload errors: each with its RFC 9113 code and whether it ends the stream or the connection', () => {
  const settings =
    (flags: number, streamId: number, payload: string, fromServer = false) =>
    () =>
      parseSettings(view(4, flags, streamId, payload), new Settings(), fromServer);
  const P = H2ErrorCode.PROTOCOL_ERROR;
  const F = H2ErrorCode.FRAME_SIZE_ERROR;
  const [PR, FS, SV] = [H2Codes.PROTOCOL, H2Codes.FRAME_SIZE, H2Codes.SETTINGS_VALUE];
  const [C, S] = ['connection', 'stream'] as const;
  const cases: [string, () => unknown, string, number, 'stream' | 'connection'][] = [
    ['data on stream 0', () => dataPayload(view(0, 0, 0, '00')), PR, P, C],
    ['data padding = payload', () => dataPayload(view(0, Flag.PADDED, 1, '04 616263')), PR, P, C],
    ['data padded, empty', () => dataPayload(view(0, Flag.PADDED, 1, '')), FS, F, C],
    ['headers on stream 0', () => headersFragment(view(1, 4, 0, '82')), PR, P, C],
    ['headers padding too long', () => headersFragment(view(1, Flag.PADDED, 1, '05 82')), PR, P, C],
    ['headers priority short', () => headersFragment(view(1, Flag.PRIORITY, 1, '000000')), FS, F, C],
    ['continuation on stream 0', () => continuationFragment(view(9, 4, 0, '82')), PR, P, C],
    ['priority on stream 0', () => checkPriority(view(2, 0, 0, '0000000110')), PR, P, C],
    ['priority of 4 bytes', () => checkPriority(view(2, 0, 3, '00000001')), FS, F, S],
    ['priority on itself', () => checkPriority(view(2, 0, 3, '0000000310')), PR, P, S],
    ['rst_stream on stream 0', () => rstStreamCode(view(3, 0, 0, '00000008')), PR, P, C],
    ['rst_stream of 3 bytes', () => rstStreamCode(view(3, 0, 1, '000008')), FS, F, C],
    ['settings on stream 1', settings(0, 1, ''), PR, P, C],
    ['settings of 5 bytes', settings(0, 0, '0001000010'), FS, F, C],
    ['settings ack with payload', settings(Flag.ACK, 0, '000100001000'), FS, F, C],
    ['enable_push 2', settings(0, 0, '000200000002'), SV, P, C],
    ['enable_push 1 from a server', settings(0, 0, '000200000001', true), SV, P, C],
    ['initial_window_size 2^31', settings(0, 0, '000480000000'), SV, H2ErrorCode.FLOW_CONTROL_ERROR, C],
    ['max_frame_size 16383', settings(0, 0, '000500003fff'), SV, P, C],
    ['max_frame_size 2^24', settings(0, 0, '000501000000'), SV, P, C],
    ['enable_connect_protocol 2', settings(0, 0, '000800000002'), SV, P, C],
    ['push_promise', () => refusePushPromise(view(5, 4, 1, '00000002')), H2Codes.PUSH_REFUSED, P, C],
    ['ping on stream 1', () => pingData(view(6, 0, 1, '0000000000000000')), PR, P, C],
    ['ping of 7 bytes', () => pingData(view(6, 0, 0, '00000000000000')), FS, F, C],
    ['goaway on stream 1', () => parseGoAway(view(7, 0, 1, '0000000000000000')), PR, P, C],
    ['goaway of 7 bytes', () => parseGoAway(view(7, 0, 0, '00000000000000')), FS, F, C],
    ['window_update of 5 bytes', () => windowIncrement(view(8, 0, 1, '0000000001')), FS, F, C],
    ['window_update 0 on stream 0', () => windowIncrement(view(8, 0, 0, '00000000')), PR, P, C],
    ['window_update 0 on stream 3', () => windowIncrement(view(8, 0, 3, '80000000')), PR, P, S],
  ];
  for (const [what, fn, code, h2Code, scope] of cases) {
    const e = caught(fn, what);
    assert.deepEqual([e.code, h2ErrorCodeName(e.h2Code), e.scope], [code, h2ErrorCodeName(h2Code), scope], what);
    if (scope === 'stream') assert.equal(e.streamId, 3, what);
  }
});

void test('settings: values apply in order, unknown ones are ignored, the lowest table size is kept', () => {
  const s = new Settings();
  const p = settingsFrame([
    [SettingId.HEADER_TABLE_SIZE, 0],
    [SettingId.HEADER_TABLE_SIZE, 8192],
    [SettingId.ENABLE_PUSH, 0],
    [SettingId.MAX_CONCURRENT_STREAMS, 100],
    [SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff],
    [SettingId.MAX_FRAME_SIZE, 0xffffff],
    [SettingId.MAX_HEADER_LIST_SIZE, 16384],
    [SettingId.ENABLE_CONNECT_PROTOCOL, 1],
    [0x4242, 0xffffffff],
  ]);
  assert.equal(parseSettings(view(4, 0, 0, p.subarray(FRAME_HEADER_SIZE)), s, true), false);
  assert.deepEqual(
    [s.headerTableSize, s.lowestHeaderTableSize, s.enablePush, s.maxConcurrentStreams, s.initialWindowSize],
    [8192, 0, 0, 100, 0x7fffffff],
  );
  assert.deepEqual([s.maxFrameSize, s.maxHeaderListSize, s.enableConnectProtocol], [0xffffff, 16384, 1]);
  assert.equal(parseSettings(view(4, Flag.ACK, 0), s, true), true);
});

void test('writers: byte layouts of RFC 9113 section 6', () => {
  const hex = (b: Buffer) => b.toString('hex');
  assert.equal(hex(dataFrameHeader(1, 5, true)), '000005' + '00' + '01' + '00000001');
  const settings = settingsFrame([[SettingId.MAX_FRAME_SIZE, 16384]]);
  assert.equal(hex(settings), '000006' + '04' + '00' + '00000000' + '0005' + '00004000');
  assert.equal(hex(settingsAckFrame()), '000000' + '04' + '01' + '00000000');
  assert.equal(hex(rstStreamFrame(0x7fffffff, 8)), '000004' + '03' + '00' + '7fffffff' + '00000008');
  assert.equal(hex(windowUpdateFrame(3, 0x7fffffff)), '000004' + '08' + '00' + '00000003' + '7fffffff');
  assert.equal(hex(goAwayFrame(5, 0)), '000008' + '07' + '00' + '00000000' + '00000005' + '00000000');
  assert.equal(hex(pingFrame(Buffer.alloc(8, 0xab), true)), '000008' + '06' + '01' + '00000000' + 'ab'.repeat(8));
  assert.equal(hex(priorityFrame(5, 3, false, 16)), '000005' + '02' + '00' + '00000005' + '00000003' + '0f');
  assert.throws(() => pingFrame(Buffer.alloc(7), false), RangeError);
});

void test('error code table of RFC 9113 section 7', () => {
  assert.equal(h2ErrorCodeName(0x0), 'NO_ERROR');
  assert.equal(h2ErrorCodeName(0x3), 'FLOW_CONTROL_ERROR');
  assert.equal(h2ErrorCodeName(0x9), 'COMPRESSION_ERROR');
  assert.equal(h2ErrorCodeName(0xd), 'HTTP_1_1_REQUIRED');
  assert.equal(h2ErrorCodeName(0x42), 'UNKNOWN_ERROR_0x42');
  assert.equal(Object.keys(H2ErrorCode).length, 14);
});
