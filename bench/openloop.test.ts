// Unit tests for the open-loop core: the schedule, coordinated-omission correction (a stalled server
// shows on every request that was due during the stall, measured from its intended time), the
// generator's own lateness kept apart, round-robin over connections, lost connections, and the framing
// of HTTP/1.1 answers. A small discrete-event simulation stands in for the network and the clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { intendedNs, OpenLoop, ResponseReader, scheduledCount } from './openloop.js';

const MS = 1e6;
const US = 1e3;

interface Sim {
  rate: number;
  connections: number;
  durationS: number;
  /** When the answer to a request sent at `sentAt` on connection `c` ends. */
  answerAt(sentAt: number, c: number): number;
  /** How late the generator's timer wakes (ns); default 0. */
  wakeLateNs?: number;
}

/** Runs an OpenLoop against a simulated server on a simulated clock: the generator wakes at every
 *  intended time (plus wakeLateNs); each connection answers its requests in order. */
function simulate(s: Sim): { loop: OpenLoop; sends: number[] } {
  let now = 0;
  const sends: number[] = [];
  const answers: { at: number; c: number }[] = [];
  /** Each connection's previous answer: answers on one connection end in order. */
  const lastAnswer = new Float64Array(s.connections);
  const count = scheduledCount(s.rate, s.durationS);
  const loop = new OpenLoop({
    rate: s.rate,
    connections: s.connections,
    count,
    windowNs: s.durationS * 1e9,
    send: (c) => {
      sends.push(c);
      const at = Math.max(s.answerAt(now, c), lastAnswer[c] ?? 0);
      lastAnswer[c] = at;
      answers.push({ at, c });
    },
  });
  for (let c = 0; c < s.connections; c++) loop.connected(c, 0);
  while (!loop.finished()) {
    const due = loop.nextDueNs();
    const wake = due === undefined ? Infinity : due + (s.wakeLateNs ?? 0);
    let first = -1;
    for (let i = 0; i < answers.length; i++)
      if (first === -1 || (answers[i]?.at ?? 0) < (answers[first]?.at ?? 0)) first = i;
    const answer = first >= 0 ? answers[first] : undefined;
    if (answer === undefined && wake === Infinity) throw new Error('simulation stuck');
    if (answer !== undefined && answer.at <= wake) {
      answers.splice(first, 1);
      now = Math.max(now, answer.at);
      loop.answered(answer.c, now, 200);
    } else {
      now = Math.max(now, wake);
      loop.tick(now);
    }
  }
  return { loop, sends };
}

void test('schedule: request j is meant for t0 + j/rate; a run holds rate x duration requests', () => {
  assert.equal(intendedNs(0, 1000), 0);
  assert.equal(intendedNs(1, 1000), 1 * MS);
  assert.equal(intendedNs(2999, 1000), 2999 * MS);
  assert.equal(intendedNs(1, 3), 333_333_333);
  assert.equal(scheduledCount(1000, 60), 60_000);
  assert.equal(scheduledCount(2000, 10), 20_000);
  assert.equal(scheduledCount(3, 0.5), 2, 'both of 0 and 333 ms fall inside 500 ms');
});

void test('a steady server: every latency is its service time, no lag, nothing queued, rates as asked', () => {
  const { loop } = simulate({ rate: 1000, connections: 4, durationS: 2, answerAt: (t) => t + 150 * US });
  assert.equal(loop.stats.completed, 2000);
  assert.equal(loop.latency.percentile(100), 150 * US);
  assert.equal(loop.latency.percentile(50), 150 * US);
  assert.equal(loop.lag.max, 0);
  assert.equal(loop.stats.queuedSends, 0);
  assert.equal(loop.stats.maxBacklog, 1);
  assert.equal(loop.stats.sentInWindow, 2000);
  assert.equal(loop.stats.completedInWindow, 2000);
});

void test('coordinated omission corrected: a 1 s stall shows on every request due during it', () => {
  // The server stops answering from 1 s to 2 s: whatever it holds then ends at 2 s.
  const stall = (t: number): number => (t >= 1e9 && t < 2e9 ? 2e9 + 100 * US : t + 100 * US);
  const { loop } = simulate({ rate: 1000, connections: 1, durationS: 3, answerAt: stall });
  assert.equal(loop.stats.completed, 3000);
  // About 1000 requests were due during the stall; measured from their intended times their latencies
  // run from 1 s down to almost nothing: a third of all requests, so p90 is deep in the stall.
  assert.ok(loop.latency.percentile(90) > 500 * MS, `corrected p90 ${loop.latency.percentile(90)}`);
  assert.ok(loop.latency.percentile(99) > 900 * MS);
  assert.ok(loop.latency.max >= 1000 * MS && loop.latency.max < 1001 * MS);
  // From the actual send (what a closed-loop client reports) only the one request caught in the stall
  // is slow: p99 looks perfect. That is the omission the correction removes.
  assert.ok(loop.serviceTime.percentile(99) < 101 * US, `uncorrected p99 ${loop.serviceTime.percentile(99)}`);
  assert.ok(loop.serviceTime.max >= 1000 * MS);
  // The generator itself was on time: the late sends are queued behind the stall, not lag.
  assert.equal(loop.lag.max, 0);
  assert.ok(loop.stats.queuedSends > 900, `queued ${loop.stats.queuedSends}`);
  assert.ok(loop.stats.maxBacklog > 900, `backlog ${loop.stats.maxBacklog}`);
});

void test('with more connections than the stall needs, requests spread and the stall still shows', () => {
  const stall = (t: number): number => (t >= 1e9 && t < 1.2e9 ? 1.2e9 : t + 100 * US);
  const { loop } = simulate({ rate: 1000, connections: 16, durationS: 2, answerAt: stall });
  // ~200 requests due in the 200 ms stall: 10% of 2000, latencies 0..200 ms.
  assert.ok(loop.latency.percentile(95) > 50 * MS);
  assert.ok(loop.latency.percentile(99.9) > 180 * MS);
  assert.ok(loop.latency.percentile(50) < 1 * MS);
});

void test("the generator's own lateness is measured apart, and counted in the latency", () => {
  const { loop } = simulate({
    rate: 500,
    connections: 2,
    durationS: 1,
    answerAt: (t) => t + 200 * US,
    wakeLateNs: 300 * US,
  });
  assert.equal(loop.lag.percentile(50), 300 * US);
  assert.equal(loop.lag.max, 300 * US);
  assert.equal(loop.latency.percentile(50), 500 * US, 'late send + service time, from the intended time');
  assert.equal(loop.serviceTime.percentile(50), 200 * US);
});

void test('round robin: request j goes on connection j mod C', () => {
  const { sends } = simulate({ rate: 100, connections: 3, durationS: 0.1, answerAt: (t) => t + 1 * US });
  assert.deepEqual(sends, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
});

void test('a lost connection loses its request in flight; once back, it sends what became due', () => {
  const sent: number[] = [];
  const loop = new OpenLoop({ rate: 1000, connections: 1, count: 5, windowNs: 5 * MS, send: (c) => sent.push(c) });
  loop.connected(0, 0);
  loop.tick(0); // request 0 goes
  loop.failed(0); // and is lost
  loop.tick(3 * MS); // 1, 2, 3 due; the connection is down
  assert.equal(sent.length, 1);
  loop.connected(0, 3.5 * MS); // request 1 goes, queued
  assert.equal(sent.length, 2);
  loop.answered(0, 4 * MS, 503); // 1 answered 3 ms after its time, with an error status; 2 goes
  assert.equal(loop.latency.max, 3 * MS);
  assert.equal(loop.stats.statusErrors, 1);
  assert.equal(loop.stats.connectionErrors, 1);
  assert.equal(loop.stats.queuedSends, 2);
  assert.equal(loop.outstanding(), 3);
  assert.throws(() => new OpenLoop({ rate: 0, connections: 1, count: 1, windowNs: 0, send: () => {} }));
  loop.answered(0, 5 * MS, 200); // 2 answered; 3 (due) goes
  loop.answered(0, 6 * MS, 200); // 3 answered; 4 is not due yet: nothing in flight
  assert.equal(sent.length, 4);
  assert.throws(() => loop.answered(0, 6 * MS, 200), /no request in flight/);
});

// ---- answer framing ----

const ANSWER = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 5\r\n\r\nhello';
const CHUNKED =
  'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0a\r\n0123456789\r\n0\r\nx-trailer: t\r\n\r\n';

function statusesOf(pieces: readonly Buffer[], reader = new ResponseReader()): number[] {
  const got: number[] = [];
  for (const p of pieces) reader.feed(p, (s) => got.push(s));
  return got;
}

/** Every way of cutting `text` in two. */
function everySplit(text: string): Buffer[][] {
  const b = Buffer.from(text, 'latin1');
  return Array.from({ length: b.length + 1 }, (_, i) => [b.subarray(0, i), b.subarray(i)]);
}

void test('answers: Content-Length and chunked bodies, pipelined, cut at every byte', () => {
  const both =
    ANSWER + CHUNKED + 'HTTP/1.1 204 No Content\r\n\r\n' + 'HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n';
  for (const pieces of everySplit(both)) assert.deepEqual(statusesOf(pieces), [200, 201, 204, 404]);
  const bytes = Buffer.from(both, 'latin1');
  assert.deepEqual(statusesOf(Array.from(bytes, (b) => Buffer.from([b]))), [200, 201, 204, 404], 'one byte at a time');
  assert.deepEqual(
    statusesOf([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n' + ANSWER)]),
    [200],
    'an interim 100 is not an answer',
  );
});

void test('answers: what cannot be framed is an error', () => {
  assert.throws(() => statusesOf([Buffer.from('HTTP/1.1 200 OK\r\n\r\nbody until close')]), /without a length/);
  assert.throws(() => statusesOf([Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')]), /bad status line/);
  assert.throws(
    () => statusesOf([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')]),
    /bad chunk size/,
  );
  assert.throws(() => statusesOf([Buffer.alloc(70_000, 'a')]), /longer than 64 KiB/);
});
