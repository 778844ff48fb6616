// The own HTTP/2 engine's per-stream guard, in process: a fault injected into forwarding code for one
// stream (src/proxy/http2/own.ts setFaultHook) ends that stream only. The faults sit where a bug would do
// the most harm: in the upstream connection's handler acting on the client's connection (the answer's
// head and DATA), in the client connection's handler acting on the upstream's (request DATA, a new
// stream), and in code run from a timer (the response timeout's error answer). Every other stream on the
// same two connections succeeds, and both connections stay up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import { setFaultHook, type FaultSite } from '../src/proxy/http2/own.js';
import { listen, metricValue, startTestProxy, waitFor } from './helpers.js';

interface Reply {
  status: number;
  body: string;
  headers: http2.IncomingHttpHeaders;
}

function request(session: http2.ClientHttp2Session, path: string, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request(
      { ':path': path, ':method': body ? 'POST' : 'GET', ':authority': 'upstream' },
      { endStream: body === undefined },
    );
    let headers: http2.IncomingHttpHeaders = {};
    let text = '';
    s.on('response', (h) => (headers = h));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve({ status: Number(headers[':status']), body: text, headers }));
    s.on('error', reject);
    if (body) s.end(body);
  });
}

void test('a fault in forwarding code for one stream ends that stream only: the other streams on the same client and upstream connections succeed', async (t) => {
  // The upstream holds every stream until all those it expects are in, then answers them in one turn, the
  // faulty ones first: so that every other stream is in flight on the shared connection when a fault hits.
  const held = new Map<string, { stream: ServerHttp2Stream; bytes: number }>();
  const sessions: ServerHttp2Session[] = [];
  let expect = new Set<string>();
  const answerAll = () => {
    const order = [...held.keys()].sort((a, b) => Number(b.startsWith('/boom')) - Number(a.startsWith('/boom')));
    for (const path of order) {
      const h = held.get(path);
      held.delete(path);
      if (h === undefined || h.stream.closed) continue;
      h.stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      h.stream.end(`${path} ${h.bytes}`);
    }
  };
  const server = http2.createServer();
  server.on('session', (s) => {
    sessions.push(s);
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const path = String(headers[':path']);
    let bytes = 0;
    stream.on('data', (d: Buffer) => (bytes += d.length));
    stream.on('end', () => {
      if (path.startsWith('/boom-error-answer')) return; // never answered: the proxy's response timeout fires
      held.set(path, { stream, bytes });
      if ([...expect].every((p) => held.has(p))) answerAll();
    });
  });
  const port = await listen(server as unknown as net.Server);
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  );
  const proxy = await startTestProxy(`127.0.0.1:${port}`, { responseTimeoutMs: '500' });
  t.after(() => proxy.close());
  setFaultHook((site: FaultSite, path: string) => {
    if (path.startsWith(`/boom-${site}`)) throw new Error(`injected fault at ${site}`);
  });
  t.after(() => setFaultHook(undefined));

  const session = http2.connect(`http://127.0.0.1:${proxy.outbound.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  let clientGoaway = false;
  session.on('goaway', () => (clientGoaway = true));

  const body = Buffer.alloc(20_000, 0x62);
  const round = async (n: number) => {
    const ok = Array.from({ length: 8 }, (_, i) => `/ok-${n}-${i}`);
    const posts = Array.from({ length: 4 }, (_, i) => `/ok-post-${n}-${i}`);
    const faults = n === 0 ? ['/boom-head-0', '/boom-data-0'] : [];
    expect = new Set([...ok, ...posts, ...faults]);
    const replies = Promise.all([
      ...ok.map((p) => request(session, p)),
      ...posts.map((p) => request(session, p, body)),
    ]);
    const faulty =
      n === 0
        ? Promise.allSettled([
            request(session, '/boom-head-0'),
            request(session, '/boom-data-0'),
            request(session, '/boom-client-data-0', body),
            request(session, '/boom-start-0'),
            request(session, '/boom-error-answer-0'),
          ])
        : Promise.resolve([]);
    const got = await replies;
    for (const [i, r] of got.entries()) {
      const path = i < ok.length ? ok[i] : posts[i - ok.length];
      assert.equal(r.status, 200, `${path}: ${r.body}`);
      assert.equal(r.body, `${path} ${i < ok.length ? 0 : body.length}`);
    }
    return faulty;
  };

  const [head, data, clientData, start, errorAnswer] = await round(0);
  // Nothing answered yet: the proxy's 500, naming the fault.
  for (const [what, r] of [
    ['head', head],
    ['client-data', clientData],
    ['start', start],
  ] as const) {
    assert.equal(r?.status, 'fulfilled', `${what}: ${String((r as PromiseRejectedResult | undefined)?.reason)}`);
    const reply = (r as PromiseFulfilledResult<Reply>).value;
    assert.equal(reply.status, 500, `${what}: ${reply.body}`);
    assert.match(String(reply.headers['outrigger-proxy-error']), new RegExp(`injected fault at ${what}`));
  }
  // The answer had begun (its head went out): the stream is reset.
  assert.equal(data?.status, 'rejected', 'a fault mid-answer resets the stream');
  assert.match(String((data as PromiseRejectedResult).reason), /NGHTTP2_INTERNAL_ERROR/);
  // The fault came from a timer, in the error answer itself: the stream is reset.
  assert.equal(errorAnswer?.status, 'rejected', 'a fault in a timer resets the stream');
  assert.match(String((errorAnswer as PromiseRejectedResult).reason), /NGHTTP2_INTERNAL_ERROR/);

  // Both connections are still the ones they were: another round goes over them.
  await round(1);
  assert.equal(clientGoaway, false, 'the client connection was not told to go away');
  assert.equal(sessions.length, 1, 'one upstream connection, never replaced');
  assert.equal(sessions[0]?.closed, false);
  await waitFor(
    'every fault counted',
    async () => (await metricValue(proxy, 'request_errors_total', { error: 'proxy_fault' })) === 5,
  );
});
