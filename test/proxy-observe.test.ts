// Observability of one proxy, with real sockets: GET /tap (auth, filters, header values only
// when asked, max, the session bound), W3C traceparent propagation with spans exported to a small OTLP/HTTP
// receiver over HTTP/1 and HTTP/2, the access log, and the route_* and process_* metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeServer, listen, startTestProxy, waitFor } from './helpers.js';
import { tapPod, TapError, type TapEvent } from '../src/observe/tap.js';
import { startTestControlPlane } from './control-plane.js';
import { pod, service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** A small OTLP/HTTP (JSON) receiver: every span posted to /v1/traces, with its resource. */
async function otlpReceiver(): Promise<{ url: string; spans: Span[]; resources: unknown[]; close(): Promise<void> }> {
  const spans: Span[] = [];
  const resources: unknown[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/json') {
        res.writeHead(404).end();
        return;
      }
      const j = JSON.parse(body) as { resourceSpans: { resource: unknown; scopeSpans: { spans: Span[] }[] }[] };
      for (const rs of j.resourceSpans) {
        resources.push(rs.resource);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, spans, resources, close: () => closeServer(server) };
}

const attr = (s: Span, k: string) => {
  const v = s.attributes.find((a) => a.key === k)?.value;
  return v === undefined ? undefined : (v.stringValue ?? v.intValue ?? v.boolValue);
};

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

void test('tap, tracing, access log and metrics of one proxy', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-observe-'));
  const tokenFile = join(dir, 'tap-token');
  const token = 'a'.repeat(20) + 'tap-secret';
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const accessLog = join(dir, 'access.log');
  const otlp = await otlpReceiver();
  // The upstream echoes the traceparent it received, and answers 503 on /fail.
  const seen: (string | undefined)[] = [];
  const states: (string | undefined)[] = [];
  const upstream = http.createServer((req, res) => {
    seen.push(req.headers.traceparent as string | undefined);
    states.push(req.headers.tracestate as string | undefined);
    res.writeHead(req.url === '/fail' ? 503 : 200, { 'content-type': 'text/plain' });
    res.end(`tp=${req.headers.traceparent ?? ''}`);
  });
  const upPort = await listen(upstream);
  const h2up = http2.createServer();
  h2up.on('stream', (s, h) => {
    seen.push(h.traceparent as string | undefined);
    if (h['content-type'] === 'application/grpc') {
      // A gRPC answer whose status (5, NOT_FOUND) comes in the trailers.
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'nope' }));
      s.end(Buffer.alloc(5));
      return;
    }
    s.respond({ ':status': 200 });
    s.end('h2');
  });
  const h2Port = await listen(h2up);
  const proxy = await startTestProxy(`127.0.0.1:${upPort}`, {
    tapTokenFile: tokenFile,
    traceCollector: otlp.url,
    accessLog,
    podNamespace: 'shop',
    podName: 'cart-0',
    podWorkload: 'cart',
  });
  const h2proxy = await startTestProxy(`127.0.0.1:${h2Port}`, {
    traceCollector: otlp.url,
    podWorkload: 'h2',
    tapTokenFile: tokenFile,
  });
  t.after(async () => {
    await proxy.close();
    await h2proxy.close();
    await closeServer(upstream);
    await closeServer(h2up);
    await otlp.close();
    await rm(dir, { recursive: true, force: true });
  });
  const admin = `127.0.0.1:${proxy.admin.port}`;

  // Tap: refused without the token, with a wrong one, and with a bad filter.
  assert.equal((await get(`http://${admin}/tap`)).status, 401);
  assert.equal((await get(`http://${admin}/tap`, { authorization: 'Bearer nope' })).status, 401);
  assert.equal((await get(`http://${admin}/tap?direction=up`, { authorization: `Bearer ${token}` })).status, 400);
  await assert.rejects(
    tapPod({ addr: admin, token: 'wrong', onEvent: () => {} }),
    (e: unknown) => e instanceof TapError && e.status === 401,
  );

  // Two sessions: one for /api with header names, one for everything with values, max 3.
  const names: TapEvent[] = [];
  const values: TapEvent[] = [];
  let started = 0;
  const onStart = () => void started++;
  const a = tapPod({ addr: admin, token, filter: { path: '/api', max: 2 }, onEvent: (e) => names.push(e), onStart });
  const b = tapPod({
    addr: admin,
    token,
    filter: { max: 3, headers: true, method: 'GET' },
    onEvent: (e) => values.push(e),
    onStart,
  });
  await waitFor('both tap sessions', () => started === 2);

  const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const r1 = await get(`${proxy.url}/api/one?q=1`, {
    traceparent: parent,
    tracestate: 'vendor=1',
    'x-secret': 's3cret',
  });
  assert.equal(r1.status, 200);
  // The upstream sees the same trace with the proxy's span as the parent.
  assert.match(r1.body, /^tp=00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
  assert.ok(!r1.body.includes('00f067aa0ba902b7'));
  assert.equal(states[0], 'vendor=1', 'tracestate passes through');
  const proxySpanId = r1.body.split('-')[2];
  // No traceparent: the proxy starts a trace.
  const r2 = await get(`${proxy.url}/fail`);
  assert.equal(r2.status, 503);
  assert.match(r2.body, /^tp=00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  await get(`${proxy.url}/api/two`);
  assert.equal(await a, 'done');
  assert.equal(await b, 'done');

  assert.deepEqual(
    names.map((e) => e.path),
    ['/api/one?q=1', '/api/two'],
  );
  const e1 = names[0] as TapEvent;
  assert.equal(e1.direction, 'outbound');
  assert.equal(e1.method, 'GET');
  assert.equal(e1.status, 200);
  assert.equal(e1.route, 'default');
  assert.equal(e1.dst, `127.0.0.1:${upPort}`);
  assert.match(e1.src, /^127\.0\.0\.1:\d+$/);
  assert.equal(e1.tls, false);
  assert.ok(Array.isArray(e1.headers) && e1.headers.includes('x-secret'));
  assert.ok(!JSON.stringify(names).includes('s3cret'), 'no header values unless asked');
  assert.ok(e1.latency_ms >= 0 && !Number.isNaN(Date.parse(e1.ts)));
  assert.deepEqual(
    values.map((e) => [e.path, e.status]),
    [
      ['/api/one?q=1', 200],
      ['/fail', 503],
      ['/api/two', 200],
    ],
  );
  assert.deepEqual((values[0]?.headers as Record<string, string[]>)['x-secret'], ['s3cret']);

  // At most 8 sessions at once: the 9th is refused with 429.
  const ac = new AbortController();
  let open = 0;
  const held = Array.from({ length: 8 }, () =>
    tapPod({ addr: admin, token, signal: ac.signal, onEvent: () => {}, onStart: () => void open++ }),
  );
  await waitFor('8 tap sessions', () => open === 8);
  await assert.rejects(
    tapPod({ addr: admin, token, onEvent: () => {} }),
    (e: unknown) => e instanceof TapError && e.status === 429,
  );
  ac.abort();
  assert.deepEqual(await Promise.all(held), Array(8).fill('aborted'));

  // HTTP/2: the traceparent is propagated the same way.
  const c = http2.connect(h2proxy.url);
  t.after(() => c.close());
  const h2body = await new Promise<string>((resolve, reject) => {
    const s = c.request({ ':path': '/h2path', traceparent: parent });
    let body = '';
    s.on('data', (d: Buffer) => (body += d.toString()));
    s.on('end', () => resolve(body));
    s.on('error', reject);
  });
  assert.equal(h2body, 'h2');
  assert.match(seen.at(-1) ?? '', /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);

  // gRPC over HTTP/2: tap shows the gRPC status from the trailers.
  const grpcEvents: TapEvent[] = [];
  let grpcTapOn = false;
  const grpcTap = tapPod({
    addr: `127.0.0.1:${h2proxy.admin.port}`,
    token,
    filter: { max: 1, path: '/pkg.Svc/' },
    onEvent: (e) => grpcEvents.push(e),
    onStart: () => (grpcTapOn = true),
  });
  await waitFor('the gRPC tap session', () => grpcTapOn);
  await new Promise<void>((resolve, reject) => {
    const s = c.request({
      ':method': 'POST',
      ':path': '/pkg.Svc/Get',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    s.on('data', () => {});
    s.on('end', () => resolve());
    s.on('error', reject);
    s.end(Buffer.alloc(5));
  });
  assert.equal(await grpcTap, 'done');
  assert.equal(grpcEvents[0]?.status, 200);
  assert.equal(grpcEvents[0]?.grpc_status, 5);
  assert.equal(grpcEvents[0]?.method, 'POST');

  // Spans: one per request, batched to the receiver within about a second.
  await waitFor('4 spans', () => otlp.spans.length >= 4, 5000);
  const s1 = otlp.spans.find((s) => s.spanId === proxySpanId);
  assert.ok(s1, `a span ${proxySpanId} among ${JSON.stringify(otlp.spans.map((s) => s.spanId))}`);
  assert.equal(s1.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(s1.parentSpanId, '00f067aa0ba902b7');
  assert.equal(s1.kind, 3);
  assert.equal(attr(s1, 'http.request.method'), 'GET');
  assert.equal(attr(s1, 'url.path'), '/api/one');
  assert.equal(attr(s1, 'http.response.status_code'), '200');
  assert.equal(attr(s1, 'outrigger.direction'), 'outbound');
  assert.equal(attr(s1, 'outrigger.route'), 'default');
  const sFail = otlp.spans.find((s) => attr(s, 'url.path') === '/fail');
  assert.deepEqual((sFail as unknown as { status: unknown }).status, { code: 2 });
  assert.equal(sFail?.parentSpanId, undefined, 'a trace the proxy started has no parent');
  assert.ok(otlp.spans.some((s) => attr(s, 'url.path') === '/h2path' && s.parentSpanId === '00f067aa0ba902b7'));
  assert.ok(JSON.stringify(otlp.resources).includes('"cart"'), 'service.name is the workload');

  // The access log: one JSON line per request (no header values).
  await waitFor('access log lines', () => true);
  let lines: Record<string, unknown>[] = [];
  await waitFor(
    '3 access log lines',
    () => {
      void readFile(accessLog, 'utf8').then(
        (s) =>
          (lines = s
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)),
      );
      return lines.length >= 3;
    },
    5000,
  );
  assert.deepEqual(lines.map((l) => [l.path, l.status]).slice(0, 3), [
    ['/api/one?q=1', 200],
    ['/fail', 503],
    ['/api/two', 200],
  ]);
  assert.equal(lines[0]?.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.ok(!JSON.stringify(lines).includes('s3cret'));

  // Metrics: the route_* family and the observers' counters.
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  assert.match(
    text,
    /route_request_total\{direction="outbound",target_addr="127\.0\.0\.1:\d+",authority="127\.0\.0\.1:\d+",route="default",dst_namespace="",dst_deployment="",dst_pod="",dst_service=""\} 3/,
  );
  assert.match(text, /route_response_total\{[^}]*status_code="503"[^}]*classification="failure"\} 1/);
  assert.match(text, /^tap_events_total \d+/m);
  assert.match(text, /^tap_sessions 0$/m);
  assert.match(text, /^trace_spans_exported_total [1-9]/m);
  assert.match(text, /^access_log_lines_total 3$/m);
  assert.match(text, /^process_open_fds [1-9]/m);
});

void test('tap is off without a token file (403), and nothing is observed', async (t) => {
  const server = http.createServer((_req, res) => res.end('ok'));
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  assert.equal((await get(`http://127.0.0.1:${proxy.admin.port}/tap`, { authorization: 'Bearer x' })).status, 403);
  const text = await (await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`)).text();
  assert.ok(!text.includes('tap_sessions') && !text.includes('trace_spans') && !text.includes('access_log'));
});

void test(
  'a tap client that does not read loses events (counted); the proxy goes on serving',
  { timeout: 60_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'outrigger-observe-'));
    const tokenFile = join(dir, 'tap-token');
    await writeFile(tokenFile, 'slow-reader-token\n', { mode: 0o600 });
    const server = http.createServer((_req, res) => res.end('ok'));
    const port = await listen(server);
    const proxy = await startTestProxy(`127.0.0.1:${port}`, { tapTokenFile: tokenFile });
    const sock = net.connect(proxy.admin.port, '127.0.0.1');
    t.after(async () => {
      sock.destroy();
      await proxy.close();
      await closeServer(server);
      await rm(dir, { recursive: true, force: true });
    });
    // A tap session whose client never reads: the events pile up in the kernel's buffers, then the
    // session's own buffer, then are dropped.
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write('GET /tap?max=10000 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer slow-reader-token\r\n\r\n');
    sock.pause();
    const admin = `http://127.0.0.1:${proxy.admin.port}`;
    const sessions = async () =>
      Number(/^tap_sessions (\d+)/m.exec(await (await fetch(`${admin}/metrics`)).text())?.[1]);
    const t0 = Date.now();
    while ((await sessions()) !== 1) {
      if (Date.now() - t0 > 5000) assert.fail('no tap session');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Long paths make big events: about 8 KiB each.
    const path = `/${'p'.repeat(8000)}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const one = () =>
      new Promise<number>((resolve, reject) => {
        http
          .get(`${proxy.url}${path}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          })
          .on('error', reject);
      });
    let dropped = 0;
    for (let round = 0; round < 40 && dropped === 0; round++) {
      const statuses = await Promise.all(Array.from({ length: 50 }, one));
      assert.ok(statuses.every((s) => s === 200));
      dropped = Number(/^tap_events_dropped_total (\d+)/m.exec(await (await fetch(`${admin}/metrics`)).text())?.[1]);
    }
    assert.ok(dropped > 0, 'events were dropped for the slow reader');
  },
);

void test(
  'HTTP/2 through a route: tap with header values, spans and the access log, gRPC status and a reset included',
  { timeout: 60_000 },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'outrigger-observe-h2-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'tap-token');
    const token = 'h2-tap-token-0123456789';
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const accessLog = join(dir, 'access.log');
    const otlp = await otlpReceiver();
    t.after(() => otlp.close());
    const seen: { path: string; traceparent: string | undefined }[] = [];
    const up = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    up.on('session', (s) => {
      sessions.add(s);
      s.on('error', () => {});
    });
    up.on('stream', (s, h) => {
      s.on('error', () => {});
      const path = String(h[':path']);
      seen.push({ path, traceparent: h.traceparent as string | undefined });
      if (path === '/v2/reset') return s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      if (h['content-type'] === 'application/grpc') {
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'nope' }));
        s.end(Buffer.alloc(5));
        return;
      }
      s.respond({ ':status': path === '/v2/fail' ? 503 : 200 });
      s.end('h2');
    });
    const upPort = await listen(up as unknown as net.Server);
    t.after(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sessions) s.destroy();
          up.close(() => resolve());
        }),
    );
    // A Service whose one route rewrites /api to /v2 on its backend.
    const store = new LocalStore();
    const ep = { pod: 'default/app-1', ip: '127.0.0.1', ports: { 80: upPort }, ready: true };
    const svc = (name: string, ip: string) =>
      service(name, ip, [ep], { ports: [{ name: 'http', port: 80, appProtocol: 'h2c' }] });
    store.replace({
      services: [svc('web', '127.0.0.61'), svc('app', '10.96.0.61')],
      pods: [pod('app-1', '127.0.0.1', { meshed: false })],
      routes: [
        {
          kind: 'HTTPRoute',
          namespace: 'default',
          name: 'api',
          parents: [{ name: 'web', port: 80 }],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [], queryParams: [] }],
              filters: [{ type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/v2' } }],
              backends: [{ name: 'app', port: 80, weight: 1 }],
            },
          ],
        },
      ],
    });
    const cp = await startTestControlPlane({ store });
    t.after(() => cp.close());
    const proxy = await startTestProxy('127.0.0.61:80', {
      destinationAddr: cp.addr,
      trustAnchors: cp.ca.trustAnchorPem,
      opaquePorts: '',
      tapTokenFile: tokenFile,
      traceCollector: otlp.url,
      accessLog,
      podWorkload: 'h2client',
    });
    t.after(() => proxy.close());
    const admin = `127.0.0.1:${proxy.admin.port}`;

    const events: TapEvent[] = [];
    let on = false;
    const tap = tapPod({
      addr: admin,
      token,
      filter: { max: 4, headers: true },
      onEvent: (e) => events.push(e),
      onStart: () => (on = true),
    });
    await waitFor('the tap session', () => on);

    const c = http2.connect(proxy.url);
    c.on('error', () => {});
    t.after(() => c.destroy());
    const send = (headers: http2.OutgoingHttpHeaders, body?: Buffer) =>
      new Promise<{ status: number; error?: string }>((resolve) => {
        const s = c.request({ ':authority': 'web.default:80', ...headers }, { endStream: body === undefined });
        let status = 0;
        s.on('response', (h) => (status = Number(h[':status'])));
        s.on('data', () => {});
        s.on('end', () => resolve({ status }));
        s.on('error', (e: Error) => resolve({ status, error: e.message }));
        if (body) s.end(body);
      });
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    assert.equal((await send({ ':path': '/api/one?q=1', traceparent: parent, 'x-secret': 's3cret' })).status, 200);
    assert.equal((await send({ ':path': '/api/fail' })).status, 503);
    const g = await send(
      { ':method': 'POST', ':path': '/api/pkg.Svc/Get', 'content-type': 'application/grpc', te: 'trailers' },
      Buffer.alloc(5),
    );
    assert.equal(g.status, 200);
    const reset = await send({ ':path': '/api/reset' });
    assert.match(reset.error ?? '', /NGHTTP2_REFUSED_STREAM/, "the upstream's reset reaches the client as it was");
    assert.equal(await tap, 'done');

    // The upstream saw the rewritten path, and the trace with the proxy's span as the parent.
    assert.equal(seen[0]?.path, '/v2/one?q=1');
    assert.match(seen[0]?.traceparent ?? '', /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    const proxySpanId = (seen[0]?.traceparent ?? '').split('-')[2];

    // Tap: the request as the client sent it, the route that took it, the answer as the client got it.
    assert.deepEqual(
      events.map((e) => [e.path, e.status, e.grpc_status, e.failure]),
      [
        ['/api/one?q=1', 200, undefined, undefined],
        ['/api/fail', 503, undefined, undefined],
        ['/api/pkg.Svc/Get', 200, 5, undefined],
        ['/api/reset', 0, undefined, 'reset'],
      ],
    );
    const e1 = events[0] as TapEvent;
    assert.equal(e1.route, 'default/api');
    assert.equal(e1.dst, `127.0.0.1:${upPort}`);
    assert.equal(e1.authority, 'web.default:80');
    assert.match(e1.src, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual((e1.headers as Record<string, string[]>)['x-secret'], ['s3cret']);
    assert.equal(events[2]?.method, 'POST');

    // Spans: the traced request's span is the proxy's, with the caller's as its parent.
    await waitFor('4 spans', () => otlp.spans.length >= 4, 5000);
    const s1 = otlp.spans.find((s) => s.spanId === proxySpanId);
    assert.ok(s1, `a span ${proxySpanId} among ${JSON.stringify(otlp.spans.map((s) => s.spanId))}`);
    assert.equal(s1.parentSpanId, '00f067aa0ba902b7');
    assert.equal(attr(s1, 'url.path'), '/api/one');
    assert.equal(attr(s1, 'outrigger.route'), 'default/api');
    const sFail = otlp.spans.find((s) => attr(s, 'url.path') === '/api/fail');
    assert.deepEqual((sFail as unknown as { status: unknown }).status, { code: 2 });

    // The access log: one line per stream, in order, without header values.
    let lines: Record<string, unknown>[] = [];
    await waitFor(
      '4 access log lines',
      async () => {
        lines = (await readFile(accessLog, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        return lines.length >= 4;
      },
      5000,
    );
    assert.deepEqual(
      lines.map((l) => [l.path, l.status, l.grpc_status, l.route]),
      [
        ['/api/one?q=1', 200, undefined, 'default/api'],
        ['/api/fail', 503, undefined, 'default/api'],
        ['/api/pkg.Svc/Get', 200, 5, 'default/api'],
        ['/api/reset', 0, undefined, 'default/api'],
      ],
    );
    assert.equal(lines[0]?.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.ok(!JSON.stringify(lines).includes('s3cret'));
  },
);
