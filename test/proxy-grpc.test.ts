// In-process tests of gRPC through the proxy's HTTP/2 path: a real @grpc/grpc-js client (insecure, so
// h2c with prior knowledge) calls the proxy's outbound port, which forwards to a real grpc-js server.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { listen, metricValue, startTestProxy, type TestProxy } from './helpers.js';
import { Echo, startGrpcEcho, type EchoClient, type EchoMsg } from './grpc.js';

/** A proxy in front of 127.0.0.1:`port` and a client whose channel goes to the proxy's outbound port. */
async function proxied(t: TestContext, port: number): Promise<{ proxy: TestProxy; client: EchoClient }> {
  const proxy = await startTestProxy(`127.0.0.1:${port}`, { opaquePorts: '' });
  const client = new Echo(
    `127.0.0.1:${proxy.outbound.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as EchoClient;
  t.after(async () => {
    client.close();
    await proxy.close();
  });
  return { proxy, client };
}

function unary(client: EchoClient, req: EchoMsg, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) {
  return new Promise<{ reply: EchoMsg; headers: grpc.Metadata; trailers: grpc.Metadata }>((resolve, reject) => {
    let headers = new grpc.Metadata();
    const call = client.Unary(req, md, opts, (err, reply) => {
      if (err) reject(err);
      else
        call.on('status', (s: grpc.StatusObject) =>
          resolve({ reply: reply as EchoMsg, headers, trailers: s.metadata }),
        );
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
  });
}

async function callError(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  assert.fail('the call succeeded');
}

void test('grpc: a unary call with metadata both ways', async (t) => {
  let seenMeta: unknown;
  const port = await startGrpcEcho(t, {
    Unary: (call, cb) => {
      seenMeta = call.metadata.get('x-client-meta')[0];
      const head = new grpc.Metadata();
      head.set('x-server-header', 'hello');
      call.sendMetadata(head);
      const trailer = new grpc.Metadata();
      trailer.set('x-server-trailer', 'bye');
      cb(null, { text: call.request.text.toUpperCase(), seq: call.request.seq + 1 }, trailer);
    },
  });
  const { client } = await proxied(t, port);
  const md = new grpc.Metadata();
  md.set('x-client-meta', 'hi');
  const r = await unary(client, { text: 'hello', seq: 41 }, md);
  assert.deepEqual({ ...r.reply }, { text: 'HELLO', seq: 42 });
  assert.equal(seenMeta, 'hi');
  assert.deepEqual(r.headers.get('x-server-header'), ['hello']);
  assert.deepEqual(r.trailers.get('x-server-trailer'), ['bye']);
});

void test('grpc: a bidirectional stream: ping-pong, then a burst, both sides close', async (t) => {
  const port = await startGrpcEcho(t);
  const { client } = await proxied(t, port);
  const call = client.Bidi();
  const got: EchoMsg[] = [];
  let onReply: (() => void) | undefined;
  call.on('data', (m: EchoMsg) => {
    got.push(m);
    onReply?.();
  });
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {}); // the status says it all

  // Ping-pong: each message is sent only after the previous echo came back, so neither direction can
  // be buffered until the other side ends.
  for (let i = 0; i < 20; i++) {
    const answered = new Promise<void>((r) => (onReply = r));
    call.write({ text: `ping ${i}`, seq: i });
    await answered;
    assert.deepEqual({ ...got[i] }, { text: `echo ping ${i}`, seq: i });
  }
  onReply = undefined;
  for (let i = 20; i < 220; i++) call.write({ text: `burst ${i}`, seq: i });
  call.end();
  const s = await status;
  assert.equal(s.code, grpc.status.OK);
  assert.equal(got.length, 220);
  got.forEach((m, i) => assert.equal(m.seq, i));
  assert.equal(got[219]?.text, 'echo burst 219');
});

void test('grpc: a non-OK status (NOT_FOUND with a message) reaches the client', async (t) => {
  const port = await startGrpcEcho(t, {
    Unary: (call, cb) => cb({ code: grpc.status.NOT_FOUND, details: `no echo named ${call.request.text}` }),
    Bidi: (call) => {
      // A status after messages: it travels in the trailers, not in a trailers-only response.
      call.write({ text: 'one', seq: 1 });
      call.write({ text: 'two', seq: 2 });
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'enough for today' });
    },
  });
  const { client, proxy } = await proxied(t, port);
  const err = await callError(unary(client, { text: 'ghost', seq: 0 }));
  assert.equal(err.code, grpc.status.NOT_FOUND);
  assert.equal(err.details, 'no echo named ghost');

  const call = client.Bidi();
  const got: EchoMsg[] = [];
  call.on('data', (m: EchoMsg) => got.push(m));
  call.on('error', () => {});
  const s = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  assert.equal(s.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(s.details, 'enough for today');
  assert.deepEqual(
    got.map((m) => m.text),
    ['one', 'two'],
  );
  const target = `127.0.0.1:${port}`;
  assert.equal(
    await metricValue(proxy, 'response_total', {
      target_addr: target,
      grpc_status_code: '5',
      classification: 'failure',
    }),
    1,
  );
  assert.equal(
    await metricValue(proxy, 'response_total', {
      target_addr: target,
      grpc_status_code: '8',
      classification: 'failure',
    }),
    1,
  );
});

void test('grpc: a deadline the server does not meet cancels the call upstream', async (t) => {
  let cancelled!: () => void;
  const upstreamCancelled = new Promise<void>((r) => (cancelled = r));
  let arrived = false;
  const port = await startGrpcEcho(t, {
    Unary: (call) => ((arrived = true), call.on('cancelled', () => cancelled())), // never answers
  });
  const { client } = await proxied(t, port);
  // Long enough for the call to reach the server on a busy machine: one whose deadline passes before
  // that is never seen upstream, and there would be nothing to cancel (the wait below would never end).
  const err = await callError(
    unary(client, { text: 'slow', seq: 0 }, new grpc.Metadata(), { deadline: Date.now() + 1500 }),
  );
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(arrived, 'the call reached the server before its deadline');
  await upstreamCancelled;
});

void test('grpc: nothing listening upstream → UNAVAILABLE with a message naming the proxy', async (t) => {
  const s = net.createServer();
  const deadPort = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  const { client, proxy } = await proxied(t, deadPort);
  const err = await callError(unary(client, { text: 'anyone?', seq: 0 }));
  assert.equal(err.code, grpc.status.UNAVAILABLE);
  assert.match(err.details, /^outrigger proxy: .*connect failed: ECONNREFUSED/);

  const call = client.Bidi();
  call.on('error', () => {});
  const st = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  assert.equal(st.code, grpc.status.UNAVAILABLE);
  assert.match(st.details, /outrigger proxy/);
  assert.equal(await metricValue(proxy, 'response_total', { grpc_status_code: '14', classification: 'failure' }), 2);
});

void test('grpc: response_total counts calls by grpc_status_code', async (t) => {
  const port = await startGrpcEcho(t, {
    Unary: (call, cb) =>
      call.request.seq % 2 ? cb({ code: grpc.status.INVALID_ARGUMENT, details: 'odd' }) : cb(null, call.request),
  });
  const { client, proxy } = await proxied(t, port);
  for (let i = 0; i < 6; i++) await unary(client, { text: 'x', seq: i }).catch(() => undefined);
  const base = { direction: 'outbound', target_addr: `127.0.0.1:${port}` };
  assert.equal(await metricValue(proxy, 'request_total', base), 6);
  assert.equal(
    await metricValue(proxy, 'response_total', {
      ...base,
      status_code: '200',
      grpc_status_code: '0',
      classification: 'success',
    }),
    3,
  );
  assert.equal(
    await metricValue(proxy, 'response_total', {
      ...base,
      status_code: '200',
      grpc_status_code: '3',
      classification: 'failure',
    }),
    3,
  );
});
