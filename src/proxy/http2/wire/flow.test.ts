import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H2Codes, H2Error, H2ErrorCode } from './errors.js';
import { ConnectionFlow } from './flow.js';
import { MAX_WINDOW } from './frames.js';

const FC = [H2Codes.FLOW_CONTROL, H2ErrorCode.FLOW_CONTROL_ERROR] as const;

const caught = (fn: () => unknown): H2Error => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof H2Error, String(e));
    return e;
  }
  assert.fail('no error');
};

void test('sending takes from the stream and the connection window; sendable is the smaller', () => {
  const f = new ConnectionFlow();
  const a = f.openStream(1);
  const b = f.openStream(3);
  assert.equal(f.sendable(a), 65535);
  f.sent(a, 60000);
  assert.equal(f.sendable(a), 5535);
  assert.equal(f.sendable(b), 5535); // the connection window is shared
  f.sent(b, 5535);
  assert.equal(f.sendable(b), 0);
  assert.throws(() => f.sent(b, 1), RangeError);
  f.windowUpdate(null, 10000);
  assert.equal(f.sendable(a), 5535); // now the stream window is the smaller
  assert.equal(f.sendable(b), 10000);
  f.windowUpdate(a, 100000);
  assert.equal(f.sendable(a), 10000);
});

void test('WINDOW_UPDATE past 2^31-1: a stream error on a stream, a connection error on the connection', () => {
  const f = new ConnectionFlow();
  const s = f.openStream(5);
  f.windowUpdate(s, MAX_WINDOW - 65535); // exactly 2^31-1 is allowed
  assert.equal(s.sendWindow, MAX_WINDOW);
  let e = caught(() => f.windowUpdate(s, 1));
  assert.deepEqual([e.code, e.h2Code, e.scope, e.streamId], [...FC, 'stream', 5]);
  f.windowUpdate(null, MAX_WINDOW - 65535);
  e = caught(() => f.windowUpdate(null, 1));
  assert.deepEqual([e.code, e.h2Code, e.scope], [...FC, 'connection']);
});

void test("the peer's SETTINGS_INITIAL_WINDOW_SIZE moves every open stream (even below 0), not the connection", () => {
  const f = new ConnectionFlow();
  const a = f.openStream(1);
  const b = f.openStream(3);
  f.sent(a, 30000);
  f.peerInitialWindowChanged(16384);
  assert.equal(a.sendWindow, 16384 - 30000); // negative: nothing may be sent until updates come
  assert.equal(b.sendWindow, 16384);
  assert.equal(f.sendable(a), 0);
  assert.equal(f.sendWindow, 65535 - 30000);
  f.windowUpdate(a, 20000);
  assert.equal(f.sendable(a), 6384);
  assert.equal(f.openStream(5).sendWindow, 16384); // new streams start from the new value
  f.peerInitialWindowChanged(65535);
  assert.equal(b.sendWindow, 65535);
  // Pushing an open stream past 2^31-1 is a connection error (RFC 9113 section 6.9.2).
  f.windowUpdate(b, MAX_WINDOW - 65535 - 10);
  const e = caught(() => f.peerInitialWindowChanged(65535 + 11));
  assert.deepEqual([e.code, e.h2Code, e.scope], [...FC, 'connection']);
});

void test('receiving more than a window allows: connection error for the connection, stream error for a stream', () => {
  const f = new ConnectionFlow({ streamWindow: 1000, connectionWindow: 65535 });
  const s = f.openStream(1);
  f.received(s, 1000);
  assert.equal(s.recvWindow, 0);
  let e = caught(() => f.received(s, 1));
  assert.deepEqual([e.code, e.h2Code, e.scope, e.streamId], [...FC, 'stream', 1]);
  // DATA on a stream we no longer track still counts against the connection (RFC 9113 section 6.9).
  f.received(null, 64000);
  assert.equal(f.recvWindow, 65535 - 1000 - 1 - 64000);
  e = caught(() => f.received(null, 1000));
  assert.deepEqual([e.code, e.scope], [H2Codes.FLOW_CONTROL, 'connection']);
});

void test('WINDOW_UPDATE policy: give bytes back once half the window was released, in one update', () => {
  const f = new ConnectionFlow({ streamWindow: 1000, connectionWindow: 1 << 20 });
  assert.equal(f.initialConnectionUpdate(), (1 << 20) - 65535);
  assert.equal(f.recvWindow, 1 << 20);
  const s = f.openStream(1);
  f.received(s, 400);
  assert.equal(f.releaseStream(s, 400), 0); // 400 < 500: wait
  f.received(s, 300);
  assert.equal(f.releaseStream(s, 100), 500); // 500 released: give them back
  assert.equal(s.recvWindow, 1000 - 700 + 500);
  assert.equal(f.releaseStream(s, 0), 0);
  assert.equal(f.releaseConnection(700), 0);
  assert.equal(f.releaseConnection((1 << 19) - 700), 1 << 19);
  assert.equal(f.recvWindow, (1 << 20) - 700 + (1 << 19));
  // The default connection window needs no opening update.
  assert.equal(new ConnectionFlow().initialConnectionUpdate(), 0);
});

void test('our SETTINGS_INITIAL_WINDOW_SIZE, once acknowledged, moves every open stream receive window', () => {
  const f = new ConnectionFlow({ streamWindow: 65535 });
  const s = f.openStream(1);
  f.received(s, 60000);
  f.localInitialWindowChanged(16384);
  assert.equal(s.recvWindow, 16384 - 60000);
  assert.equal(caught(() => f.received(s, 1)).scope, 'stream');
  // Releasing now counts against the smaller window: half of 16384.
  assert.equal(f.releaseStream(s, 8191), 0);
  assert.equal(f.releaseStream(s, 1), 8192);
  assert.equal(f.openStream(3).recvWindow, 16384);
  f.closeStream(1);
  assert.equal(f.streams.has(1), false);
  assert.throws(() => new ConnectionFlow({ streamWindow: MAX_WINDOW + 1 }), RangeError);
});
