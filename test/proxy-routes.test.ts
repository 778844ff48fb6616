// Gateway API routes on the proxy's outbound path, with real sockets and no root: a real control plane
// (LocalStore) on loopback, a client proxy whose static destination is a Service address only the
// store knows, and real HTTP/1 and gRPC servers as the backends' endpoints. Covers weighted splits and
// their change, header and gRPC method matches, filters, 404, timeouts.request, retries (on 503, a
// killed replica) with their budget, and circuit breaking.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { startTestControlPlane } from './control-plane.js';
import { Echo, startGrpcEcho, type EchoClient, type EchoMsg } from './grpc.js';
import { pod, service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import type { EndpointEntry, RouteEntry, RouteRuleEntry, ServiceEntry } from '../src/control/store/store.js';
import { closeServer, listen, metricValue, startTestProxy, type TestProxy, waitFor } from './helpers.js';
import { checkEarly, checkEndings, startEarlyServer, startEndingsServer } from './h2-endings.js';

const VIP = '127.0.0.60';

// ---- backends -------------------------------------------------------------------------------------------

interface Backend {
  readonly name: string;
  port: number;
  hits: number;
  /** What to answer; default 200 with the backend's name. */
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  close(): Promise<void>;
}

async function startBackend(t: TestContext, name: string): Promise<Backend> {
  const b: Backend = {
    name,
    port: 0,
    hits: 0,
    close: () => closeServer(server),
  };
  const server = http.createServer((req, res) => {
    b.hits++;
    req.resume();
    req.on('end', () => {
      if (b.handler) return b.handler(req, res);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, url: req.url, headers: req.headers }));
    });
  });
  server.keepAliveTimeout = 60_000;
  b.port = await listen(server);
  t.after(() => closeServer(server));
  return b;
}

const ep = (name: string, port: number): EndpointEntry => ({
  pod: `default/${name}`,
  ip: '127.0.0.1',
  ports: { 80: port },
  ready: true,
});
const svc = (name: string, clusterIP: string, eps: EndpointEntry[], appProtocol = 'http'): ServiceEntry =>
  service(name, clusterIP, eps, { ports: [{ name: 'http', port: 80, appProtocol }] });
const rule = (r: Partial<RouteRuleEntry> & Pick<RouteRuleEntry, 'backends'>): RouteRuleEntry => ({
  matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
  filters: [],
  ...r,
});
const httpRoute = (name: string, rules: RouteRuleEntry[]): RouteEntry => ({
  kind: 'HTTPRoute',
  namespace: 'default',
  name,
  parents: [{ name: 'web', port: 80 }],
  rules,
});

interface Mesh {
  readonly store: LocalStore;
  readonly proxy: TestProxy;
  set(services: ServiceEntry[], routes: RouteEntry[]): void;
}

/** A control plane with `services` and `routes`, and a client proxy sending everything to the Service `web` (VIP). */
async function startMesh(
  t: TestContext,
  services: ServiceEntry[],
  routes: RouteEntry[],
  settings: Parameters<typeof startTestProxy>[1] = {},
): Promise<Mesh> {
  const store = new LocalStore();
  const set = (s: ServiceEntry[], r: RouteEntry[]) => {
    const pods = s.flatMap((x) =>
      x.endpoints.map((e) => pod(e.pod.split('/')[1] as string, '127.0.0.1', { meshed: false })),
    );
    store.replace({ services: s, pods, routes: r });
  };
  set(services, routes);
  const cp = await startTestControlPlane({ store });
  t.after(() => cp.close());
  const proxy = await startTestProxy(`${VIP}:80`, {
    destinationAddr: cp.addr,
    trustAnchors: cp.ca.trustAnchorPem,
    opaquePorts: '',
    ...settings,
  });
  t.after(() => proxy.close());
  return { store, proxy, set };
}

interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function request(
  p: TestProxy,
  pathname: string,
  opts: { headers?: http.OutgoingHttpHeaders; agent?: http.Agent; method?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: p.outbound.port,
        path: pathname,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        agent: opts.agent ?? false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const nameOf = (r: Reply): string =>
  r.status === 200 ? (JSON.parse(r.body) as { name: string }).name : `status ${r.status}`;

/** `n` GETs, `concurrency` at a time over keep-alive connections; the replies in order. */
async function load(p: TestProxy, n: number, concurrency = 16, pathname = '/'): Promise<Reply[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const out: Reply[] = new Array<Reply>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      out[i] = await request(p, pathname, { agent });
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}

function shares(replies: Reply[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of replies) m.set(nameOf(r), (m.get(nameOf(r)) ?? 0) + 1);
  return m;
}

// ---- the tests -----------------------------------------------------------------------------------------------

void test('routes: a 90/10 split over 2,000 requests, then 50/50 over 4,000 after a store change', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const v2 = await startBackend(t, 'v2');
  const services = [
    svc('web', VIP, [ep('web-1', v1.port)]),
    svc('web-v1', '10.96.0.11', [ep('v1-1', v1.port)]),
    svc('web-v2', '10.96.0.12', [ep('v2-1', v2.port)]),
  ];
  const split = (a: number, b: number) => [
    httpRoute('split', [
      rule({
        backends: [
          { name: 'web-v1', port: 80, weight: a },
          { name: 'web-v2', port: 80, weight: b },
        ],
      }),
    ]),
  ];
  const m = await startMesh(t, services, split(90, 10));

  const first = shares(await load(m.proxy, 2000));
  const share1 = (first.get('v1') ?? 0) / 2000;
  console.log(`90/10 split: v1 ${first.get('v1')}, v2 ${first.get('v2')} (v1 share ${(share1 * 100).toFixed(1)}%)`);
  assert.equal((first.get('v1') ?? 0) + (first.get('v2') ?? 0), 2000, JSON.stringify([...first]));
  assert.ok(Math.abs(share1 - 0.9) <= 0.03, `v1 share ${share1}`);

  const updates = await metricValue(m.proxy, 'destination_updates_total');
  const changedAt = Date.now();
  m.set(services, split(50, 50));
  await waitFor(
    'the proxy to receive the new routes',
    async () => (await metricValue(m.proxy, 'destination_updates_total')) > updates,
  );
  console.log(`50/50 change reached the proxy after ${Date.now() - changedAt} ms`);
  // 4,000 here: at 50/50 the standard deviation of 2,000 draws is 1.1%, so ±3% would fail by chance about
  // once in 150 runs; with 4,000 it is 0.8% (±3% is 3.8 of them). At 90/10 above it is 0.67% (4.5 of them).
  const second = shares(await load(m.proxy, 4000));
  const share2 = (second.get('v1') ?? 0) / 4000;
  console.log(`50/50 split: v1 ${second.get('v1')}, v2 ${second.get('v2')} (v1 share ${(share2 * 100).toFixed(1)}%)`);
  assert.ok(Math.abs(share2 - 0.5) <= 0.03, `v1 share ${share2}`);
  // The route label is on the request metrics of routed requests.
  assert.ok((await metricValue(m.proxy, 'request_total', { route: 'default/split' })) >= 6000);
});

void test('routes: header match, filters (header modifiers, rewrite, redirect) and 404 when no rule matches', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const v2 = await startBackend(t, 'v2');
  const services = [
    svc('web', VIP, [ep('web-1', v1.port)]),
    svc('web-v1', '10.96.0.11', [ep('v1-1', v1.port)]),
    svc('web-v2', '10.96.0.12', [ep('v2-1', v2.port)]),
  ];
  const routes = [
    httpRoute('canary', [
      rule({
        matches: [
          {
            path: { type: 'PathPrefix', value: '/api' },
            headers: [{ type: 'Exact', name: 'x-canary', value: 'yes' }],
            queryParams: [],
          },
        ],
        filters: [
          { type: 'RequestHeaderModifier', set: [{ name: 'x-route', value: 'canary' }], add: [], remove: ['x-secret'] },
          { type: 'ResponseHeaderModifier', set: [{ name: 'x-served-by', value: 'canary' }], add: [], remove: [] },
          { type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/v2' } },
        ],
        backends: [{ name: 'web-v2', port: 80, weight: 1 }],
      }),
      rule({
        matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [], queryParams: [] }],
        backends: [{ name: 'web-v1', port: 80, weight: 1 }],
      }),
      rule({
        matches: [{ path: { type: 'Exact', value: '/old' }, headers: [], queryParams: [] }],
        filters: [{ type: 'RequestRedirect', path: { type: 'ReplaceFullPath', value: '/new' }, statusCode: 301 }],
        backends: [],
      }),
    ]),
  ];
  const m = await startMesh(t, services, routes);

  const plain = await request(m.proxy, '/api/items');
  assert.equal(nameOf(plain), 'v1');
  const canary = await request(m.proxy, '/api/items?x=1', { headers: { 'x-canary': 'yes', 'x-secret': 's3cret' } });
  assert.equal(nameOf(canary), 'v2');
  const seen = JSON.parse(canary.body) as { url: string; headers: Record<string, string> };
  assert.equal(seen.url, '/v2/items?x=1', 'ReplacePrefixMatch rewrote the path and kept the query');
  assert.equal(seen.headers['x-route'], 'canary');
  assert.equal(seen.headers['x-secret'], undefined);
  assert.equal(canary.headers['x-served-by'], 'canary');
  assert.equal(plain.headers['x-served-by'], undefined);

  const moved = await request(m.proxy, '/old?q=2', { headers: { host: 'web.default:80' } });
  assert.equal(moved.status, 301);
  assert.equal(moved.headers.location, 'http://web.default/new?q=2');

  // No rule matches: 404, and a keep-alive connection goes on.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const missing = await request(m.proxy, '/elsewhere', { agent });
  assert.equal(missing.status, 404, missing.body);
  assert.match(String(missing.headers['outrigger-proxy-error']), /no route matches GET \/elsewhere/);
  assert.equal(nameOf(await request(m.proxy, '/api', { agent })), 'v1');
});

// ---- gRPC ------------------------------------------------------------------------------------------------------

/** An Echo backend that prefixes every answer with its name. */
function startGrpcBackend(
  t: TestContext,
  name: string,
  unary?: grpc.handleUnaryCall<EchoMsg, EchoMsg>,
): Promise<number> {
  return startGrpcEcho(t, {
    Unary: unary ?? ((call, cb) => cb(null, { text: `${name}:${call.request.text}`, seq: call.request.seq })),
    Bidi: (call) => {
      call.on('data', (m: EchoMsg) => call.write({ text: `${name}:${m.text}`, seq: m.seq }));
      call.on('end', () => call.end());
    },
  });
}

function unary(client: EchoClient, text: string): Promise<EchoMsg> {
  return new Promise((resolve, reject) =>
    client.Unary({ text, seq: 1 }, new grpc.Metadata(), {}, (err, res) =>
      err ? reject(err) : resolve(res as EchoMsg),
    ),
  );
}

void test('routes: gRPC method routing, and a retry of UNAVAILABLE on another replica', async (t) => {
  const a = await startGrpcBackend(t, 'A');
  const b = await startGrpcBackend(t, 'B');
  let flakyCalls = 0;
  const flaky = await startGrpcBackend(t, 'F', (_call, cb) => {
    flakyCalls++;
    cb({ code: grpc.status.UNAVAILABLE, details: 'flaky' });
  });
  const good = await startGrpcBackend(t, 'G');
  const services = [
    svc('web', VIP, [ep('web-1', a)], 'grpc'),
    svc('grpc-a', '10.96.0.21', [ep('a-1', a)], 'grpc'),
    svc('grpc-b', '10.96.0.22', [ep('b-1', b)], 'grpc'),
    svc('grpc-r', '10.96.0.23', [ep('r-1', flaky), ep('r-2', good)], 'grpc'),
  ];
  const grpcRoute: RouteEntry = {
    kind: 'GRPCRoute',
    namespace: 'default',
    name: 'echo',
    parents: [{ name: 'web', port: 80 }],
    rules: [
      {
        matches: [
          {
            headers: [],
            queryParams: [],
            grpcMethod: { type: 'Exact', service: 'outrigger.test.Echo', method: 'Unary' },
          },
        ],
        filters: [],
        backends: [{ name: 'grpc-a', port: 80, weight: 1 }],
      },
      {
        matches: [
          {
            headers: [{ type: 'Exact', name: 'x-retry', value: '1' }],
            queryParams: [],
            grpcMethod: { type: 'Exact', service: 'outrigger.test.Echo', method: 'Unary' },
          },
        ],
        filters: [],
        backends: [{ name: 'grpc-r', port: 80, weight: 1 }],
        retry: { attempts: 2, statuses: [], grpcCodes: [14], connectFailure: true, reset: true, timeout: false },
      },
      { matches: [{ headers: [], queryParams: [] }], filters: [], backends: [{ name: 'grpc-b', port: 80, weight: 1 }] },
    ],
  };
  const m = await startMesh(t, services, [grpcRoute]);
  const client = new Echo(
    `127.0.0.1:${m.proxy.outbound.port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as EchoClient;
  t.after(() => client.close());

  assert.equal((await unary(client, 'hi')).text, 'A:hi');
  const call = client.Bidi();
  const got: string[] = [];
  call.on('data', (msg: EchoMsg) => got.push(msg.text));
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => {});
  call.write({ text: 'x', seq: 1 });
  call.end();
  assert.equal((await status).code, grpc.status.OK);
  assert.deepEqual(got, ['B:x'], 'Bidi goes to the catch-all rule');

  // Trailers-only UNAVAILABLE from the flaky replica is retried on the other one (the unary body replayed).
  const md = new grpc.Metadata();
  md.set('x-retry', '1');
  for (let i = 0; i < 10; i++) {
    const r = await new Promise<EchoMsg>((resolve, reject) =>
      client.Unary({ text: `r${i}`, seq: i }, md, {}, (err, res) => (err ? reject(err) : resolve(res as EchoMsg))),
    );
    assert.equal(r.text, `G:r${i}`);
  }
  console.log(`grpc retries: flaky replica answered ${flakyCalls} of 10 calls' first attempts, all 10 succeeded`);
  assert.ok(flakyCalls === 0 || (await metricValue(m.proxy, 'retry_total', { reason: 'status' })) >= flakyCalls);
});

// ---- timeouts, retries, budget, breakers ---------------------------------------------------------------------

void test('routes: timeouts.request answers 504', async (t) => {
  const slow = await startBackend(t, 'slow');
  slow.handler = (_req, res) => setTimeout(() => res.end('late'), 3000);
  const services = [
    svc('web', VIP, [ep('web-1', slow.port)]),
    svc('web-slow', '10.96.0.31', [ep('slow-1', slow.port)]),
  ];
  const m = await startMesh(t, services, [
    httpRoute('slow', [rule({ backends: [{ name: 'web-slow', port: 80, weight: 1 }], requestTimeoutMs: 200 })]),
  ]);
  const r = await request(m.proxy, '/');
  assert.equal(r.status, 504, r.body);
  assert.match(String(r.headers['outrigger-proxy-error']), /timed out after 200ms/);
  assert.equal(
    await metricValue(m.proxy, 'request_errors_total', { direction: 'outbound', error: 'route_timeout' }),
    1,
  );
});

void test('routes: a 503 is retried on the second replica', async (t) => {
  const bad = await startBackend(t, 'bad');
  bad.handler = (_req, res) => {
    res.statusCode = 503;
    res.end('unavailable');
  };
  const ok = await startBackend(t, 'ok');
  const services = [
    svc('web', VIP, [ep('web-1', ok.port)]),
    svc('web-r', '10.96.0.41', [ep('bad-1', bad.port), ep('ok-1', ok.port)]),
  ];
  const retry = {
    attempts: 2,
    statuses: [[503, 503]] as [number, number][],
    grpcCodes: [],
    connectFailure: true,
    reset: false,
    timeout: false,
  };
  const m = await startMesh(t, services, [
    httpRoute('retry', [rule({ backends: [{ name: 'web-r', port: 80, weight: 1 }], retry })]),
  ]);
  const replies = await load(m.proxy, 50, 4);
  assert.deepEqual([...shares(replies)], [['ok', 50]]);
  const retries = await metricValue(m.proxy, 'retry_total', { route: 'default/retry', reason: 'status' });
  console.log(`retry on 503: the bad replica saw ${bad.hits} requests, ${retries} retries, 50/50 succeeded`);
  assert.ok(bad.hits >= 1, 'the bad replica was tried');
  assert.equal(retries, bad.hits);
});

void test('routes: the retry budget keeps a backend failing 100% under about 1.2x the client rate', async (t) => {
  const down = await startBackend(t, 'down');
  down.handler = (_req, res) => {
    res.statusCode = 503;
    res.end('down');
  };
  const services = [
    svc('web', VIP, [ep('web-1', down.port)]),
    svc('web-down', '10.96.0.51', [ep('down-1', down.port)]),
  ];
  const retry = {
    attempts: 3,
    statuses: [[500, 599]] as [number, number][],
    grpcCodes: [],
    connectFailure: true,
    reset: true,
    timeout: true,
  };
  // Breakers off in practice (a high threshold): every request reaches the backend, only the budget limits retries.
  const m = await startMesh(
    t,
    services,
    [httpRoute('storm', [rule({ backends: [{ name: 'web-down', port: 80, weight: 1 }], retry })])],
    { breakerFailures: '1000000' },
  );
  const n = 3000;
  const started = performance.now();
  const replies = await load(m.proxy, n, 8);
  const seconds = (performance.now() - started) / 1000;
  assert.ok(replies.every((r) => r.status === 503));
  const retries = await metricValue(m.proxy, 'retry_total', { route: 'default/storm' });
  const skipped = await metricValue(m.proxy, 'retry_skipped_total', {
    route: 'default/storm',
    reason: 'budget-exhausted',
  });
  const ratio = down.hits / n;
  console.log(
    `retry budget: ${n} client requests in ${seconds.toFixed(1)} s, ${down.hits} reached the backend (${ratio.toFixed(3)}x), ${retries} retries, ${skipped} refused by the budget`,
  );
  // 20% of the requests plus the reserve of 10/s over the 10 s window (100 retries), which each new
  // window gives again: a run longer than one window (a busy machine) gets it once more per window.
  const reserve = 100 * Math.ceil((seconds + 1) / 10);
  assert.ok(down.hits <= n * 1.2 + reserve, `backend saw ${down.hits} in ${seconds.toFixed(1)} s`);
  assert.ok(ratio <= 1.2 + reserve / n + 0.02, `ratio ${ratio}`);
  assert.ok(skipped > 0, 'the budget refused retries');
});

void test('routes: a killed replica: zero failures with retries on; counted failures and an ejection with retries off', async (t) => {
  const r1 = await startBackend(t, 'r1');
  const r2 = await startBackend(t, 'r2');
  const r3 = await startBackend(t, 'r3');
  const eps = [ep('r-1', r1.port), ep('r-2', r2.port), ep('r-3', r3.port)];
  const services = [svc('web', VIP, eps), svc('web-on', '10.96.0.61', eps), svc('web-off', '10.96.0.62', eps)];
  const retry = {
    attempts: 2,
    statuses: [[502, 503]] as [number, number][],
    grpcCodes: [],
    connectFailure: true,
    reset: true,
    timeout: false,
  };
  const routes = [
    httpRoute('killed', [
      rule({
        matches: [{ path: { type: 'PathPrefix', value: '/on' }, headers: [], queryParams: [] }],
        backends: [{ name: 'web-on', port: 80, weight: 1 }],
        retry,
      }),
      rule({
        matches: [{ path: { type: 'PathPrefix', value: '/off' }, headers: [], queryParams: [] }],
        backends: [{ name: 'web-off', port: 80, weight: 1 }],
      }),
    ]),
  ];
  const m = await startMesh(t, services, routes);
  // Warm both routes' pools, then kill r3 (its listener and its connections).
  await load(m.proxy, 30, 3, '/on');
  await load(m.proxy, 30, 3, '/off');
  await r3.close();

  const on = await load(m.proxy, 300, 4, '/on');
  const onFailed = on.filter((r) => r.status !== 200).length;
  const onRetries = await metricValue(m.proxy, 'retry_total', { route: 'default/killed' });
  console.log(`killed replica, retries on: ${on.length} GETs, ${onFailed} failed, ${onRetries} retries`);
  assert.equal(onFailed, 0);

  const off = await load(m.proxy, 300, 4, '/off');
  const offFailed = off.filter((r) => r.status !== 200).length;
  const ejections = await metricValue(m.proxy, 'endpoint_ejections_total', {
    backend: 'web-off.default.svc.cluster.local:80',
  });
  const failures = await metricValue(m.proxy, 'response_total', { route: 'default/killed', classification: 'failure' });
  console.log(
    `killed replica, retries off: ${off.length} GETs, ${offFailed} failed (response_total failure ${failures}), ${ejections} ejection(s)`,
  );
  assert.ok(offFailed >= 1, 'some requests failed without retries');
  assert.equal(failures, offFailed, 'the failures are counted');
  assert.ok(ejections >= 1, 'the dead endpoint was ejected');
  assert.ok(offFailed < 150, `the breaker keeps most requests off the dead endpoint (${offFailed} failed)`);
});

void test('circuit breaking without routes: a killed replica of three is ejected, the others answer, and it is probed back in', async (t) => {
  const r1 = await startBackend(t, 'r1');
  const r2 = await startBackend(t, 'r2');
  const r3 = await startBackend(t, 'r3');
  const m = await startMesh(t, [svc('web', VIP, [ep('r-1', r1.port), ep('r-2', r2.port), ep('r-3', r3.port)])], []);
  const backend = { backend: 'web.default.svc.cluster.local:80' };
  await load(m.proxy, 30, 3);
  assert.ok(r3.hits > 0, 'r3 was in rotation');
  await r3.close();

  // Until the breaker ejects r3 (7 failures in a row by default): bounded by requests, not time.
  let sent = 0;
  let failedBefore = 0;
  while ((await metricValue(m.proxy, 'endpoint_ejections_total', backend)) === 0) {
    assert.ok(sent < 2000, `r3 not ejected after ${sent} requests`);
    const rs = await load(m.proxy, 20, 4);
    sent += rs.length;
    failedBefore += rs.filter((r) => r.status !== 200).length;
  }
  assert.ok(failedBefore >= 1, 'the dead replica failed requests before its ejection');

  // Ejected: the others answer. A failure now can only be a probe of r3 (its backoff ended), and a
  // failed probe ejects it again: so failures never exceed the new ejections.
  const ejected = await metricValue(m.proxy, 'endpoint_ejections_total', backend);
  const during = await load(m.proxy, 200, 4);
  const failedDuring = during.filter((r) => r.status !== 200);
  const reEjections = (await metricValue(m.proxy, 'endpoint_ejections_total', backend)) - ejected;
  console.log(
    `no routes, killed replica: ${sent} GETs until its ejection (${failedBefore} failed); then ${during.length} GETs, ${failedDuring.length} failed, ${reEjections} re-ejection(s)`,
  );
  assert.ok(
    failedDuring.length <= reEjections,
    `only failed probes fail (${failedDuring.length} failed, ${reEjections} re-ejections)`,
  );
  for (const r of during) if (r.status === 200) assert.notEqual(nameOf(r), 'r3');
  assert.ok(during.filter((r) => r.status === 200).length >= 200 - reEjections);

  // r3 comes back on its port: a probe finds it and it is back in rotation.
  let revivedHits = 0;
  const revived = http.createServer((req, res) => {
    revivedHits++;
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ name: 'r3' })));
  });
  await new Promise<void>((resolve, reject) => {
    revived.once('error', reject);
    revived.listen(r3.port, '127.0.0.1', () => resolve());
  });
  t.after(() => closeServer(revived));
  await waitFor('r3 probed back in', async () =>
    (await load(m.proxy, 20, 4)).some((r) => r.status === 200 && nameOf(r) === 'r3'),
  );
  const after = await load(m.proxy, 60, 4);
  assert.equal(after.filter((r) => r.status !== 200).length, 0, 'no failures once every replica answers');
  assert.ok(revivedHits > 0);
});

void test('a full queue: past max-in-flight and max-queued, requests get 503 at once; the queued ones go when slots free; a client that leaves while queued frees its place', async (t) => {
  const held: http.ServerResponse[] = [];
  const b = await startBackend(t, 'busy');
  b.handler = (_req, res) => void held.push(res);
  const m = await startMesh(t, [svc('web', VIP, [ep('busy-1', b.port)])], [], {
    maxInFlightRequests: '2',
    maxQueuedRequests: '2',
  });

  // One request that leaves while it waits: its place in the queue must not be lost for good.
  const first = [request(m.proxy, '/a'), request(m.proxy, '/b')];
  await waitFor('two requests in flight', () => held.length === 2);
  const leaver = net.connect(m.proxy.outbound.port, '127.0.0.1');
  leaver.on('error', () => undefined);
  leaver.write(`GET /leaver HTTP/1.1\r\nhost: web\r\n\r\n`);
  await waitFor(
    'the leaver queued',
    async () => (await metricValue(m.proxy, 'request_queue_total', { result: 'queued' })) === 1,
  );
  leaver.destroy();
  await new Promise((r) => setTimeout(r, 100));

  const rest = Array.from({ length: 8 }, (_, i) => request(m.proxy, `/r${i}`));
  await waitFor(
    'six refused',
    async () => (await metricValue(m.proxy, 'request_queue_total', { result: 'full' })) === 6,
  );
  assert.equal(held.length, 2, 'the backend sees no more than max-in-flight at once');
  // Free the slots, one at a time: each goes to a waiting request.
  for (let i = 0; i < 2; i++) {
    held.shift()?.end('ok');
    await waitFor('a waiting request to reach the backend', () => held.length === 2);
  }
  for (const r of held.splice(0)) r.end('ok');
  const replies = await Promise.all([...first, ...rest]);
  const statuses = replies.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 200, 503, 503, 503, 503, 503, 503]);
  const refused = replies.find((r) => r.status === 503);
  assert.match(refused?.body ?? '', /2 requests in flight and 2 waiting: the queue is full/);
  assert.equal(b.hits, 4, 'the leaver never reached the backend');

  // Nothing leaked: two at once go straight through again.
  b.handler = (_req, res) => res.end('ok');
  const again = await Promise.all([request(m.proxy, '/x'), request(m.proxy, '/y')]);
  assert.deepEqual(
    again.map((r) => r.status),
    [200, 200],
  );
  assert.equal(await metricValue(m.proxy, 'request_queue_total', { result: 'queued' }), 3);
  assert.equal(
    await metricValue(m.proxy, 'request_errors_total', { error: 'queue_full' }),
    6,
    'each refusal is counted by its cause',
  );
});

void test('a full queue over HTTP/2: a stream past the limit gets 503 at once, and the slot comes back when the held stream ends', async (t) => {
  const held: http2.Http2ServerResponse[] = [];
  let hold = true;
  const server = http2.createServer((_req, res) => (hold ? void held.push(res) : res.end('ok')));
  const port = await listen(server);
  const m = await startMesh(t, [svc('web', VIP, [ep('busy-1', port)], 'h2c')], [], {
    maxInFlightRequests: '1',
    maxQueuedRequests: '0',
  });
  // After the proxy's close (hooks run in the order they were added): an h2 server closes only once its
  // sessions are gone, and the proxy's pooled session to it would otherwise stay until its idle timeout.
  t.after(() => closeServer(server));
  const session = http2.connect(`http://127.0.0.1:${m.proxy.outbound.port}`);
  t.after(() => session.close());
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = session.request({ ':path': path, ':authority': 'web' });
      let status = 0;
      let body = '';
      s.on('response', (h) => (status = Number(h[':status'])));
      s.setEncoding('utf8');
      s.on('data', (d: string) => (body += d));
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
      s.end();
    });
  const a = get('/held');
  await waitFor('one stream in flight', () => held.length === 1);
  const refused = await get('/over');
  assert.equal(refused.status, 503);
  assert.match(refused.body, /1 requests in flight and 0 waiting: the queue is full/);
  held.shift()?.end('ok');
  assert.equal((await a).status, 200);
  hold = false;
  assert.equal((await get('/after')).status, 200, 'the slot came back');
  assert.equal(await metricValue(m.proxy, 'request_queue_total', { result: 'full' }), 1);
  assert.equal(await metricValue(m.proxy, 'request_errors_total', { error: 'queue_full' }), 1);
});

void test('routes over HTTP/2: an answer and reset before the request ended keeps its trailers; no status, a lost connection and a reset reach the client as gRPC says and count as failures', async (t) => {
  const early = await startEarlyServer();
  const endings = await startEndingsServer();
  t.after(async () => {
    await early.close();
    await endings.close();
  });
  const services = [
    svc('web', VIP, [ep('web-1', endings.port)], 'h2c'),
    svc('early', '10.96.0.41', [ep('early-1', early.port)], 'h2c'),
    svc('endings', '10.96.0.42', [ep('endings-1', endings.port)], 'h2c'),
  ];
  const route = httpRoute('web', [
    rule({
      matches: [{ path: { type: 'Exact', value: '/early' }, headers: [], queryParams: [] }],
      backends: [{ name: 'early', port: 80, weight: 1 }],
    }),
    rule({ backends: [{ name: 'endings', port: 80, weight: 1 }] }),
  ]);
  const m = await startMesh(t, services, [route]);
  const session = http2.connect(`http://127.0.0.1:${m.proxy.outbound.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  await checkEarly(session);
  await checkEndings(session, m.proxy, 'route_response_total', {
    direction: 'outbound',
    route: 'default/web',
    dst_pod: 'endings-1',
  });
});

// ---- HTTP/2 through routes (the own engine) ----------------------------------------------------------------

interface H2Backend {
  port: number;
  hits: number;
  /** Every request's path, method, headers and body length, in order. */
  readonly seen: { path: string; method: string; headers: http2.IncomingHttpHeaders; bodyBytes: number }[];
  /** What to answer once the body is read; default 200 with the backend's name as JSON. */
  handler?: (res: http2.Http2ServerResponse, bodyBytes: number) => void;
}

/** An h2c server that reads each request body to its end and answers with its name and what it saw. */
async function startH2Backend(t: TestContext, name: string): Promise<H2Backend> {
  const b: H2Backend = { port: 0, hits: 0, seen: [] };
  const server = http2.createServer((req, res) => {
    b.hits++;
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      b.seen.push({ path: req.url, method: req.method, headers: req.headers, bodyBytes: n });
      if (b.handler) return b.handler(res, n);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ name, url: req.url, headers: req.headers, bodyBytes: n }));
    });
  });
  // An h2 server closes only once its sessions are gone: the proxy's pooled session to it is closed here.
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  b.port = await listen(server);
  t.after(() => {
    for (const s of sessions) s.destroy();
    return closeServer(server);
  });
  return b;
}

interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

function h2request(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
  body?: Buffer,
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': path, ':authority': 'web.default:80', ...headers }, { endStream: !body });
    let h: http2.IncomingHttpHeaders = {};
    let text = '';
    s.on('response', (x) => (h = x));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve({ status: Number(h[':status']), headers: h, body: text }));
    s.on('error', reject);
    if (body) s.end(body);
  });
}

void test('routes over HTTP/2: header match, request and response header modifiers, rewrite of path and authority, redirect, 404 with the session going on, and a mirror', async (t) => {
  const v1 = await startH2Backend(t, 'v1');
  const v2 = await startH2Backend(t, 'v2');
  const shadow = await startH2Backend(t, 'shadow');
  const services = [
    svc('web', VIP, [ep('web-1', v1.port)], 'h2c'),
    svc('web-v1', '10.96.0.11', [ep('v1-1', v1.port)], 'h2c'),
    svc('web-v2', '10.96.0.12', [ep('v2-1', v2.port)], 'h2c'),
    svc('web-shadow', '10.96.0.13', [ep('shadow-1', shadow.port)], 'h2c'),
  ];
  const routes = [
    httpRoute('canary', [
      rule({
        matches: [
          {
            path: { type: 'PathPrefix', value: '/api' },
            headers: [{ type: 'Exact', name: 'x-canary', value: 'yes' }],
            queryParams: [],
          },
        ],
        filters: [
          { type: 'RequestHeaderModifier', set: [{ name: 'X-Route', value: 'canary' }], add: [], remove: ['x-secret'] },
          { type: 'ResponseHeaderModifier', set: [{ name: 'x-served-by', value: 'canary' }], add: [], remove: [] },
          { type: 'URLRewrite', hostname: 'v2.internal', path: { type: 'ReplacePrefixMatch', value: '/v2' } },
        ],
        backends: [{ name: 'web-v2', port: 80, weight: 1 }],
      }),
      rule({
        matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [], queryParams: [] }],
        filters: [
          {
            type: 'RequestMirror',
            backend: { name: 'web-shadow', port: 80 },
            numerator: 1,
            denominator: 1,
          },
        ],
        backends: [{ name: 'web-v1', port: 80, weight: 1 }],
      }),
      rule({
        matches: [{ path: { type: 'Exact', value: '/old' }, headers: [], queryParams: [] }],
        filters: [{ type: 'RequestRedirect', path: { type: 'ReplaceFullPath', value: '/new' }, statusCode: 301 }],
        backends: [],
      }),
    ]),
  ];
  const m = await startMesh(t, services, routes);
  const session = http2.connect(`http://127.0.0.1:${m.proxy.outbound.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());

  const plain = await h2request(session, '/api/items');
  assert.equal(plain.status, 200);
  assert.equal((JSON.parse(plain.body) as { name: string }).name, 'v1');
  assert.equal(plain.headers['x-served-by'], undefined);
  await waitFor('the mirror to reach its backend', () => shadow.seen.length === 1);
  assert.equal(shadow.seen[0]?.path, '/api/items');
  assert.equal(await metricValue(m.proxy, 'mirror_total', { result: 'sent' }), 1);

  const canary = await h2request(session, '/api/items?x=1', { 'x-canary': 'yes', 'x-secret': 's3cret' });
  assert.equal(canary.status, 200, canary.body);
  const seen = JSON.parse(canary.body) as { name: string; url: string; headers: Record<string, string> };
  assert.equal(seen.name, 'v2');
  assert.equal(seen.url, '/v2/items?x=1', 'ReplacePrefixMatch rewrote :path and kept the query');
  assert.equal(seen.headers[':authority'], 'v2.internal', 'URLRewrite hostname is the :authority upstream');
  assert.equal(seen.headers['x-route'], 'canary', 'a modifier name in capitals goes out in lower case');
  assert.equal(seen.headers['x-secret'], undefined);
  assert.equal(canary.headers['x-served-by'], 'canary');

  const moved = await h2request(session, '/old?q=2');
  assert.equal(moved.status, 301);
  assert.equal(moved.headers.location, 'http://web.default/new?q=2');

  const missing = await h2request(session, '/elsewhere');
  assert.equal(missing.status, 404, missing.body);
  assert.match(String(missing.headers['outrigger-proxy-error']), /no route matches GET \/elsewhere/);
  assert.equal((await h2request(session, '/api')).status, 200, 'the session goes on after a 404');
  assert.equal(v1.hits + v2.hits, 3);
});

void test('routes over HTTP/2: a 503 is retried on the other replica with the request body replayed; timeouts.request answers 504', async (t) => {
  const bad = await startH2Backend(t, 'bad');
  bad.handler = (res) => {
    res.statusCode = 503;
    res.end('unavailable');
  };
  const good = await startH2Backend(t, 'good');
  const slow = await startH2Backend(t, 'slow');
  slow.handler = (res) => setTimeout(() => res.end('late'), 3000);
  const services = [
    svc('web', VIP, [ep('web-1', good.port)], 'h2c'),
    svc('web-r', '10.96.0.41', [ep('bad-1', bad.port), ep('good-1', good.port)], 'h2c'),
    svc('web-slow', '10.96.0.42', [ep('slow-1', slow.port)], 'h2c'),
  ];
  const retry = {
    attempts: 2,
    statuses: [[503, 503]] as [number, number][],
    grpcCodes: [],
    connectFailure: true,
    reset: false,
    timeout: false,
  };
  const m = await startMesh(t, services, [
    httpRoute('retry', [
      rule({
        matches: [{ path: { type: 'PathPrefix', value: '/slow' }, headers: [], queryParams: [] }],
        backends: [{ name: 'web-slow', port: 80, weight: 1 }],
        requestTimeoutMs: 200,
      }),
      rule({ backends: [{ name: 'web-r', port: 80, weight: 1 }], retry }),
    ]),
  ]);
  const session = http2.connect(`http://127.0.0.1:${m.proxy.outbound.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());

  // A body of 40 000 bytes in several DATA frames: within the 64 KiB replay buffer.
  const body = Buffer.alloc(40_000, 0x61);
  const replies = await Promise.all(
    Array.from({ length: 20 }, () => h2request(session, '/upload', { ':method': 'POST' }, body)),
  );
  for (const r of replies) {
    assert.equal(r.status, 200, r.body);
    const seen = JSON.parse(r.body) as { name: string; bodyBytes: number };
    assert.equal(seen.name, 'good');
    assert.equal(seen.bodyBytes, body.length, 'the whole body reached the replica that answered');
  }
  const retries = await metricValue(m.proxy, 'retry_total', { route: 'default/retry', reason: 'status' });
  console.log(`h2 retry on 503: the bad replica saw ${bad.hits} requests, ${retries} retries, 20/20 succeeded`);
  assert.ok(bad.hits >= 1, 'the bad replica was tried');
  assert.equal(retries, bad.hits);
  for (const s of bad.seen) assert.equal(s.bodyBytes, body.length);

  const late = await h2request(session, '/slow');
  assert.equal(late.status, 504, late.body);
  assert.match(String(late.headers['outrigger-proxy-error']), /timed out after 200ms/);
  assert.equal(await metricValue(m.proxy, 'request_errors_total', { error: 'route_timeout' }), 1);
});
