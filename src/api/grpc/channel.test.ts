// The API's gRPC client against a real grpc-js server (the control plane's) serving the API's own
// services, and against raw node:http2 servers for what grpc-js never sends: trailers-only answers,
// HTTP errors, resets, cut or compressed messages, a peer that stops answering pings, GOAWAY.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../test/basics.js';
import { startGrpcServer } from '../../../test/grpc.js';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import grpc from '@grpc/grpc-js';
import { DESTINATION_GET, type GetDestination, type Update } from '../destination.js';
import { IDENTITY_CERTIFY, certify, type CertifyRequest, type CertifyResponse } from '../identity.js';
import { destinationServiceDefinition, identityServiceDefinition } from '../load.js';
import { GrpcChannel, GrpcError, type Call, type ChannelOptions, type Method, type Status } from './channel.js';
import { GrpcStatus, grpcStatusName } from './protocol.js';

function channel(t: TestContext, port: number, o: ChannelOptions = {}): GrpcChannel {
  const c = new GrpcChannel(`127.0.0.1:${port}`, o);
  t.after(() => c.close());
  return c;
}

/** A call that records its messages and its end. */
function record<Req, Res>(
  c: GrpcChannel,
  method: Method<Req, Res>,
  req: Req,
  timeoutMs?: number,
): { messages: Res[]; status: Status | undefined; call: Call } {
  const r = { messages: [] as Res[], status: undefined as Status | undefined };
  const call = c.call(
    method,
    req,
    { message: (m) => r.messages.push(m), end: (s) => (r.status = s) },
    timeoutMs !== undefined ? { timeoutMs } : {},
  );
  return Object.assign(r, { call });
}

// ---- against grpc-js ----

const grpcServer = (t: TestContext, add: (s: grpc.Server) => void, port = 0) => startGrpcServer(add, { t, port });

const update = (n: number): Update => ({
  known: true,
  service: `s${n}.default.svc.cluster.local:80`,
  endpoints: [
    {
      addr: `10.244.0.${n}:80`,
      weight: 1,
      identity: '',
      protocol_hint: 'OPAQUE',
      meshed: false,
      pod: `default/p${n}`,
      workload: '',
    },
  ],
  routes: [],
  backends: [],
});

void test('grpc-js: a unary answer, a refusal with its (non-ASCII) details, a deadline the server sees', async (t) => {
  let cancelled = false;
  const { port } = await grpcServer(t, (s) =>
    s.addService(identityServiceDefinition(), {
      Certify: (
        call: grpc.ServerUnaryCall<CertifyRequest, CertifyResponse>,
        cb: grpc.sendUnaryData<CertifyResponse>,
      ) => {
        const { token } = call.request;
        if (token === 'good')
          cb(null, {
            leaf_pem: 'leaf',
            chain_pem: 'chain',
            trust_anchor_pem: 'anchor',
            not_after_unix_seconds: 1798761600,
            identity: call.request.csr_pem,
          });
        else if (token === 'slow') call.on('cancelled', () => (cancelled = true));
        else cb({ code: grpc.status.UNAUTHENTICATED, details: 'token: refusé à 100% (not ASCII, and %)' });
      },
    }),
  );
  const c = channel(t, port);
  const res = await certify(c, { token: 'good', csr_pem: 'spiffe://x' });
  assert.deepEqual(res, {
    leaf_pem: 'leaf',
    chain_pem: 'chain',
    trust_anchor_pem: 'anchor',
    not_after_unix_seconds: '1798761600',
    identity: 'spiffe://x',
  });

  const refused = await certify(c, { token: 'bad', csr_pem: '' }).catch((e: unknown) => e);
  assert.ok(refused instanceof GrpcError);
  assert.equal(refused.code, GrpcStatus.UNAUTHENTICATED);
  assert.equal(refused.details, 'token: refusé à 100% (not ASCII, and %)');
  assert.equal(refused.message, 'UNAUTHENTICATED: token: refusé à 100% (not ASCII, and %)');

  const started = Date.now();
  const late = await certify(c, { token: 'slow', csr_pem: '' }, 200).catch((e: unknown) => e);
  assert.ok(late instanceof GrpcError);
  assert.equal(late.code, GrpcStatus.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - started < 5000);
  await waitFor('the server to see the call end', () => (cancelled ? true : undefined));
});

void test('grpc-js: a server stream, its messages in order and its end; cancel reaches the server', async (t) => {
  const open = new Set<grpc.ServerWritableStream<GetDestination, Update>>();
  const big: Update = {
    ...update(1),
    endpoints: Array.from({ length: 5000 }, (_, i) => ({
      ...update(1).endpoints[0]!,
      addr: `10.0.${i >> 8}.${i & 255}:80`,
    })),
  };
  const { port } = await grpcServer(t, (s) =>
    s.addService(destinationServiceDefinition(), {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) => {
        if (call.request.path === 'three') {
          for (const n of [1, 2, 3]) call.write(update(n));
          call.write(big);
          call.end();
          return;
        }
        if (call.request.path === 'invalid') {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'path "invalid": no' });
          return;
        }
        open.add(call);
        call.on('cancelled', () => open.delete(call));
        call.write(update(7));
      },
    }),
  );
  const c = channel(t, port);
  const three = record(c, DESTINATION_GET, { path: 'three' });
  const ended = await waitFor('the end', () => three.status);
  assert.deepEqual(ended, { code: GrpcStatus.OK, details: 'OK' });
  assert.deepEqual(
    three.messages.map((m) => m.service),
    [
      's1.default.svc.cluster.local:80',
      's2.default.svc.cluster.local:80',
      's3.default.svc.cluster.local:80',
      's1.default.svc.cluster.local:80',
    ],
  );
  assert.equal(three.messages[3]?.endpoints.length, 5000, 'a message of several frames');
  assert.deepEqual(three.messages[0], update(1));

  const invalid = record(c, DESTINATION_GET, { path: 'invalid' });
  assert.deepEqual(await waitFor('the refusal', () => invalid.status), {
    code: GrpcStatus.INVALID_ARGUMENT,
    details: 'path "invalid": no',
  });

  const watch = record(c, DESTINATION_GET, { path: 'watch' });
  await waitFor('the first message', () => watch.messages[0]);
  assert.equal(open.size, 1);
  watch.call.cancel();
  assert.equal(watch.status, undefined, 'end comes later, not from within cancel()');
  assert.equal((await waitFor('the end', () => watch.status)).code, GrpcStatus.CANCELLED);
  await waitFor('the server to see the cancel', () => (open.size === 0 ? true : undefined));
});

void test('grpc-js: the server crashes mid-stream: UNAVAILABLE; back on the same port: the next call connects again', async (t) => {
  const add = (s: grpc.Server) =>
    s.addService(destinationServiceDefinition(), {
      Get: (call: grpc.ServerWritableStream<GetDestination, Update>) => call.write(update(1)),
    });
  const first = await grpcServer(t, add);
  const c = channel(t, first.port, { reconnectDelayMs: 100 });
  const w = record(c, DESTINATION_GET, { path: 'x' });
  await waitFor('a message', () => w.messages[0]);
  first.server.forceShutdown();
  const s = await waitFor('the end', () => w.status);
  assert.equal(s.code, GrpcStatus.UNAVAILABLE, s.details);

  // Nobody listens: refused at once, then refused without a new attempt for reconnectDelayMs.
  const refused = await certify(c, { token: '', csr_pem: '' }).catch((e: unknown) => e);
  assert.ok(refused instanceof GrpcError);
  assert.equal(refused.code, GrpcStatus.UNAVAILABLE);
  assert.match(refused.details, /ECONNREFUSED/);
  const again = await c.unary(IDENTITY_CERTIFY, { token: '', csr_pem: '' }).catch((e: unknown) => e);
  assert.match(
    (again as GrpcError).details,
    /^127\.0\.0\.1:\d+: connect ECONNREFUSED/,
    'the failure of the last attempt',
  );

  // Back on the same port: a call made after reconnectDelayMs connects again.
  await grpcServer(t, add, first.port);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = record(c, DESTINATION_GET, { path: 'x' });
    const got = await waitFor('a message or an end', () =>
      r.messages[0] !== undefined ? 'message' : r.status !== undefined ? 'end' : undefined,
    );
    if (got === 'message') {
      r.call.cancel();
      break;
    }
    assert.ok(Date.now() < deadline, `no call got through: ${r.status?.details}`);
    await new Promise((res) => setTimeout(res, 150));
  }
});

// ---- against raw HTTP/2 ----

const ECHO: Method<string, string> = {
  path: '/test.Echo/Say',
  encode: (s) => Buffer.from(s),
  decode: (b) => {
    if (b.toString() === 'BAD') throw new Error('not a message');
    return b.toString();
  },
};

const frame = (s: string, flag = 0): Buffer => {
  const body = Buffer.from(s);
  const out = Buffer.alloc(5 + body.length);
  out[0] = flag;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
};

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => void;

/** An h2c server that hands each request, with its whole body, to `handler`. */
async function rawServer(
  t: TestContext,
  handler: Handler,
): Promise<{ port: number; server: http2.Http2Server; sessions: http2.ServerHttp2Session[] }> {
  const server = http2.createServer();
  const sessions: http2.ServerHttp2Session[] = [];
  server.on('session', (s) => sessions.push(s));
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => handler(stream, headers, Buffer.concat(chunks)));
    stream.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sessions) s.destroy();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, server, sessions };
}

const OK_HEAD = { ':status': 200, 'content-type': 'application/grpc' };

void test('raw: what the client sends (path, content-type, te, grpc-timeout, one framed message, end of stream)', async (t) => {
  let seen: { headers: http2.IncomingHttpHeaders; body: Buffer } | undefined;
  const { port } = await rawServer(t, (stream, headers, body) => {
    seen = { headers, body };
    stream.respond(OK_HEAD, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame('pong'));
  });
  const c = channel(t, port);
  assert.equal(await c.unary(ECHO, 'ping', { timeoutMs: 1500 }), 'pong');
  assert.ok(seen);
  assert.equal(seen.headers[':method'], 'POST');
  assert.equal(seen.headers[':path'], '/test.Echo/Say');
  assert.equal(seen.headers['content-type'], 'application/grpc');
  assert.equal(seen.headers['te'], 'trailers');
  assert.equal(seen.headers['grpc-timeout'], '1500m');
  assert.deepEqual(seen.body, frame('ping'));
});

void test('raw: messages cut anywhere and several in one chunk are read in order', async (t) => {
  const { port } = await rawServer(t, (stream) => {
    stream.respond(OK_HEAD, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    const all = Buffer.concat([frame('a'), frame(''), frame('x'.repeat(70_000)), frame('b'), frame('c')]);
    // One byte at a time for the first frames, then the rest in one write.
    let i = 0;
    const step = (): void => {
      if (i < 12) {
        stream.write(all.subarray(i, i + 1));
        i++;
        setImmediate(step);
      } else stream.end(all.subarray(i));
    };
    step();
  });
  const r = record(channel(t, port), ECHO, '');
  assert.deepEqual(await waitFor('the end', () => r.status), { code: GrpcStatus.OK, details: '' });
  assert.deepEqual(
    r.messages.map((m) => (m.length > 10 ? `${m.length} bytes` : m)),
    ['a', '', '70000 bytes', 'b', 'c'],
  );
});

void test('raw: each way an answer can go wrong gives the status a gRPC client derives', async (t) => {
  const cases: Record<string, (stream: http2.ServerHttp2Stream) => void> = {
    'trailers-only': (s) =>
      s.respond({ ...OK_HEAD, 'grpc-status': '5', 'grpc-message': 'no%20such%20thing' }, { endStream: true }),
    'http 503': (s) => s.respond({ ':status': 503 }, { endStream: true }),
    'http 404 with a body': (s) => {
      s.respond({ ':status': 404, 'content-type': 'text/plain' });
      s.end('nope');
    },
    'not grpc': (s) => {
      s.respond({ ':status': 200, 'content-type': 'text/html' });
      s.end('<html>');
    },
    'no status': (s) => {
      s.respond(OK_HEAD);
      s.end(frame('a'));
    },
    'refused stream': (s) => s.close(http2.constants.NGHTTP2_REFUSED_STREAM),
    // (Node's stream.close(code) ends the stream before its RST_STREAM; destroy() resets it alone.)
    'reset by the server': (s) => {
      s.respond(OK_HEAD);
      s.write(frame('a'));
      setTimeout(() => s.destroy(new Error('boom')), 20);
    },
    compressed: (s) => {
      s.respond(OK_HEAD);
      s.end(frame('a', 1));
    },
    'cut mid-message': (s) => {
      s.respond(OK_HEAD, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(frame('abcdef').subarray(0, 7));
    },
    'a message that does not decode': (s) => {
      s.respond(OK_HEAD, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(frame('BAD'));
    },
    'too large': (s) => {
      s.respond(OK_HEAD);
      s.end(frame('x'.repeat(2000)));
    },
  };
  const { port } = await rawServer(t, (stream, _h, body) => cases[body.subarray(5).toString()]?.(stream));
  const c = channel(t, port, { maxMessageBytes: 1000 });
  const got: Record<string, string> = {};
  for (const name of Object.keys(cases)) {
    const r = record(c, ECHO, name);
    const s = await waitFor(name, () => r.status);
    got[name] = `${grpcStatusName(s.code)}: ${s.details}`;
  }
  assert.deepEqual(got, {
    'trailers-only': 'NOT_FOUND: no such thing',
    'http 503': 'UNAVAILABLE: the server answered HTTP 503',
    'http 404 with a body': 'UNIMPLEMENTED: the server answered HTTP 404',
    'not grpc': 'UNKNOWN: the server answered with content-type text/html, not application/grpc',
    'no status': 'INTERNAL: the stream ended without a grpc-status',
    'refused stream': 'UNAVAILABLE: the server reset the stream (HTTP/2 error 7)',
    'reset by the server': 'INTERNAL: the server reset the stream (HTTP/2 error 2)',
    compressed: 'INTERNAL: the server sent a compressed message, and this client accepts none',
    'cut mid-message': 'INTERNAL: the stream ended in the middle of a message',
    'a message that does not decode':
      'INTERNAL: a response message of /test.Echo/Say could not be decoded: not a message',
    'too large': 'RESOURCE_EXHAUSTED: received a message larger than the maximum (2000 vs. 1000 bytes)',
  });
  // A unary call needs exactly one message.
  const twice = await rawServer(t, (s) => {
    s.respond(OK_HEAD, { waitForTrailers: true });
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end(Buffer.concat([frame('a'), frame('b')]));
  });
  await assert.rejects(channel(t, twice.port).unary(ECHO, ''), /INTERNAL: expected one response message, got 2/);
});

/** A TCP relay to `port` that can stop relaying (both ways) while keeping the connections open: a peer
 *  that vanished without closing. */
async function freezableRelay(t: TestContext, port: number): Promise<{ port: number; freeze(): void }> {
  const pairs: [net.Socket, net.Socket][] = [];
  const relay = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    for (const s of [down, up]) s.on('error', () => undefined);
    down.pipe(up);
    up.pipe(down);
    pairs.push([down, up]);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const p of pairs) for (const s of p) s.destroy();
    relay.close();
  });
  return {
    port: (relay.address() as AddressInfo).port,
    freeze: () => {
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
  };
}

void test('raw: a peer that stops answering pings is dropped (keepalive); its calls end UNAVAILABLE', async (t) => {
  const { port } = await rawServer(t, (stream) => {
    stream.respond(OK_HEAD);
    stream.write(frame('hello'));
  });
  const relay = await freezableRelay(t, port);
  const r = record(channel(t, relay.port, { keepaliveMs: 50, keepaliveTimeoutMs: 100 }), ECHO, '');
  await waitFor('the message', () => r.messages[0]);
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(r.status, undefined, 'pings answered: the call stays open');
  relay.freeze();
  const s = await waitFor('the end', () => r.status);
  assert.equal(s.code, GrpcStatus.UNAVAILABLE);
  assert.match(s.details, /keepalive ping not answered within 100 ms/);
});

void test('raw: after GOAWAY new calls open a new connection; an idle connection is closed', async (t) => {
  const { port, sessions } = await rawServer(t, (stream) => {
    stream.respond(OK_HEAD, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame('ok'));
  });
  const c = channel(t, port, { idleMs: 100 });
  assert.equal(await c.unary(ECHO, ''), 'ok');
  assert.equal(await c.unary(ECHO, ''), 'ok');
  assert.equal(sessions.length, 1, 'calls share the connection');
  sessions[0]?.goaway();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await c.unary(ECHO, ''), 'ok');
  assert.equal(sessions.length, 2, 'a new connection after GOAWAY');
  await waitFor(
    'the idle connection to close',
    () => (sessions[1]?.closed || sessions[1]?.destroyed ? true : undefined),
    5000,
  );
});

void test('close(): open calls end CANCELLED, later ones UNAVAILABLE; end never runs inside call()', async (t) => {
  const { port } = await rawServer(t, (stream) => {
    stream.respond(OK_HEAD);
    stream.write(frame('hello'));
  });
  const c = channel(t, port);
  const r = record(c, ECHO, '');
  await waitFor('the message', () => r.messages[0]);
  c.close();
  assert.equal((await waitFor('the end', () => r.status)).code, GrpcStatus.CANCELLED);
  const after = record(c, ECHO, '');
  assert.equal(after.status, undefined, 'not yet: the caller has not even stored the call');
  assert.deepEqual(await waitFor('the end', () => after.status), {
    code: GrpcStatus.UNAVAILABLE,
    details: 'channel closed',
  });
});

void test('nothing listening and a connect that never completes: UNAVAILABLE, not a hang', async (t) => {
  // A listener that never accepts HTTP/2: it takes the TCP connection and says nothing.
  const held: net.Socket[] = [];
  const silent = net.createServer((sock) => {
    sock.on('error', () => undefined);
    held.push(sock);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const free = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));

  const refused = record(channel(t, free), ECHO, '');
  const s = await waitFor('refused', () => refused.status);
  assert.equal(s.code, GrpcStatus.UNAVAILABLE);
  assert.match(s.details, new RegExp(`127\\.0\\.0\\.1:${free}: connect ECONNREFUSED`));

  const mute = record(channel(t, (silent.address() as AddressInfo).port), ECHO, '', 300);
  assert.equal((await waitFor('the deadline', () => mute.status)).code, GrpcStatus.DEADLINE_EXCEEDED);
});
