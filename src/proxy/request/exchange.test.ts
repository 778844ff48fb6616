// The request layer on its own: an Exchange driven by a fake RequestCodec (no sockets), over a real
// router (balancer, breakers, compiled routes, retry budget, in-flight limit). Each case checks the calls
// the codec received, in order: that is the contract the wire engines (HTTP/1, HTTP/2) rely on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Filter, Retry, Route, Rule } from '../../api/destination.js';
import { toPort, type SocketAddr } from '../../core/addr.js';
import { createLogger } from '../../core/log.js';
import type { EndpointInfo } from '../balance/balancer.js';
import { PeakEwmaBalancer } from '../balance/peak-ewma.js';
import { loadProxyConfig } from '../config.js';
import type { ProxyError } from '../errors/errors.js';
import type { ErrorResponse } from '../errors/respond.js';
import { ProxyMetrics } from '../metrics.js';
import { Breakers, type BreakerOptions } from '../route/breaker.js';
import { InFlightLimit } from '../route/limit.js';
import { RetryBudget, type RetryBudgetOptions } from '../route/retry.js';
import type { BackendTarget, Router } from '../route/router.js';
import { compileRoutes } from '../route/table.js';
import { Admit, Exchange, type ExchangeContext, type RequestCodec } from './exchange.js';
import type { MirrorTicket } from './mirror.js';

const SERVICE = 'web.default.svc.cluster.local:80';
const TARGET: SocketAddr = { host: '10.96.0.10', port: toPort(80) } as SocketAddr;
const TARGET_KEY = '10.96.0.10:80';

function endpoint(n: number): EndpointInfo {
  return {
    addr: { host: `10.244.0.${n}`, port: toPort(8080) } as EndpointInfo['addr'],
    key: `10.244.0.${n}:8080`,
    weight: 1,
    identity: undefined,
    protocolHint: 'HTTP1',
    meshed: false,
    pod: `default/web-${n}`,
  };
}

/** A Service with two endpoints and `rules` (none: no routes), as discovery would hand it over. */
function router(
  rules: Rule[],
  o: { budget?: RetryBudgetOptions; breakers?: BreakerOptions } = {},
): Router & { own: BackendTarget } {
  const balancer = new PeakEwmaBalancer();
  const eps = [endpoint(1), endpoint(2)];
  balancer.update(eps);
  const own: BackendTarget = { service: SERVICE, balancer, breakers: new Breakers(o.breakers) };
  const routes: Route[] = rules.length > 0 ? [{ kind: 'HTTP', name: 'default/web', rules }] : [];
  const backends: Backend[] = [{ service: SERVICE, exists: true, endpoints: eps } as unknown as Backend];
  return {
    balancer,
    own,
    table: compileRoutes(routes, backends),
    service: SERVICE,
    budget: new RetryBudget(o.budget),
    limit: new InFlightLimit(),
    backend: (s) => (s === SERVICE ? own : undefined),
  };
}

function rule(extra: Partial<Rule> = {}, filters: Filter[] = []): Rule {
  return {
    name: 'all',
    matches: [{ path: { type: 'PREFIX', value: '/' }, method: '', headers: [], query_params: [], grpc_method: null }],
    filters,
    backends: [{ backend: SERVICE, weight: 1 }],
    request_timeout_ms: 0,
    backend_request_timeout_ms: 0,
    retry: null,
    ...extra,
  };
}

function retry(extra: Partial<Retry> = {}): Retry {
  return {
    attempts: 2,
    statuses: [{ from: 503, to: 503 }],
    grpc_codes: [],
    connect_failure: false,
    reset: false,
    timeout: false,
    ...extra,
  };
}

/** The codec: writes down what the exchange asks of it, and tells the test when a call came. */
class FakeCodec implements RequestCodec {
  readonly calls: string[] = [];
  ex!: Exchange;
  ended = false;
  gone = false;
  private waiters: { n: number; resolve: () => void }[] = [];

  clientAddr(): string {
    return '127.0.0.1:5000';
  }
  requestEnded(): boolean {
    return this.ended;
  }
  clientGone(): boolean {
    return this.gone;
  }
  sendAttempt(retry: boolean): void {
    const ex = this.ex;
    const body = retry && ex.replay !== null ? ` body=${Buffer.concat(ex.replay).toString()}` : '';
    this.push(`send${retry ? ' retry' : ''} ${ex.method} ${ex.outTarget} to ${ex.upKey}${body}`);
  }
  dropAttempt(): void {
    this.push('drop');
  }
  answerError(r: ErrorResponse): void {
    this.push(`error ${r.status}`);
  }
  answerRedirect(status: number, location: string): void {
    this.push(`redirect ${status} ${location}`);
  }
  cutAnswer(err: ProxyError): number | undefined {
    this.push(`cut ${err.code}`);
    return undefined;
  }
  mirror(ticket: MirrorTicket): void {
    this.push(`mirror ${ticket.endpoint.key}`);
  }
  crashed(err: unknown): void {
    this.push(`crashed ${String(err)}`);
  }
  admitted(): void {
    this.push('admitted');
  }

  /** Resolves once `n` calls have come; fails with the calls so far if they do not (a liveness guard,
   *  far above the few tens of ms the timers here take). */
  async until(n: number): Promise<void> {
    if (this.calls.length >= n) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.waiters.push({ n, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${n} codec calls expected, got ${JSON.stringify(this.calls)}`)),
          5000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private push(call: string): void {
    this.calls.push(call);
    this.waiters = this.waiters.filter((w) => (this.calls.length >= w.n ? (w.resolve(), false) : true));
  }
}

function setup(
  r: Router,
  flags: Parameters<typeof loadProxyConfig>[0] = {},
): { ex: Exchange; codec: FakeCodec; metrics: ProxyMetrics } {
  const metrics = new ProxyMetrics();
  const ctx: ExchangeContext = {
    cfg: loadProxyConfig(flags, {}),
    metrics,
    direction: 'outbound',
    log: createLogger('test', 'silent'),
  };
  const codec = new FakeCodec();
  const ex = new Exchange(ctx, codec, TARGET, TARGET_KEY, r, undefined, undefined);
  codec.ex = ex;
  return { ex, codec, metrics };
}

/** The request arrives and is started: the codec's side of open, admit, start. */
function begin(ex: Exchange, method: string, path: string, bodyless: boolean): void {
  ex.open(method, path, 'web', ['host', 'web'], false, bodyless);
  assert.equal(ex.admit(), Admit.Now);
  ex.start();
}

async function counter(m: ProxyMetrics, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const metric = await m.registry.getSingleMetric(name)?.get();
  for (const v of metric?.values ?? []) out[String(v.labels['reason'] ?? v.labels['backend'])] = v.value;
  return out;
}

const otherThan = (key: string) => (key === '10.244.0.1:8080' ? '10.244.0.2:8080' : '10.244.0.1:8080');

void test('a 503 is retried on the other endpoint with the body replayed, and the answer of the retry is passed on', async () => {
  const { ex, codec, metrics } = setup(router([rule({ retry: retry() })]));
  begin(ex, 'PUT', '/items/7', false);
  const first = ex.upKey;
  ex.keep(Buffer.from('hello '));
  ex.keep(Buffer.from('world'));
  codec.ended = true;
  assert.equal(ex.answerHead(503, undefined), false, 'the 503 is not passed on');
  await codec.until(3);
  assert.equal(ex.answerHead(200, undefined), true);
  ex.answered(false, undefined);
  assert.deepEqual(codec.calls, [
    `send PUT /items/7 to ${first}`,
    'drop',
    `send retry PUT /items/7 to ${otherThan(first)} body=hello world`,
  ]);
  assert.equal(ex.status, 200);
  assert.deepEqual(await counter(metrics, 'retry_total'), { status: 1 });
});

void test('with the retry budget spent, the 503 is passed on and the skip is counted', async () => {
  const { ex, codec, metrics } = setup(router([rule({ retry: retry() })], { budget: { ratio: 0, minPerSecond: 0 } }));
  begin(ex, 'GET', '/', true);
  codec.ended = true;
  assert.equal(ex.answerHead(503, undefined), true, 'no retry: the 503 goes to the client');
  ex.answered(false, undefined);
  await new Promise((r) => setTimeout(r, 300)); // longer than any retry pause: nothing more may come
  assert.deepEqual(codec.calls, [`send GET / to ${ex.upKey}`]);
  assert.deepEqual(await counter(metrics, 'retry_skipped_total'), { 'budget-exhausted': 1 });
  assert.deepEqual(await counter(metrics, 'retry_total'), {});
});

void test('the retries a policy allows are made, then the last answer is passed on', async () => {
  const { ex, codec } = setup(router([rule({ retry: retry({ attempts: 1 }) })]));
  begin(ex, 'GET', '/', true);
  codec.ended = true;
  const first = ex.upKey;
  assert.equal(ex.answerHead(503, undefined), false);
  await codec.until(3);
  assert.equal(ex.answerHead(503, undefined), true, 'attempts exhausted: passed on');
  ex.answered(false, undefined);
  assert.deepEqual(codec.calls, [`send GET / to ${first}`, 'drop', `send retry GET / to ${otherThan(first)}`]);
});

void test('an attempt that times out is dropped and retried, and the retry answers', async () => {
  const { ex, codec, metrics } = setup(
    router([rule({ backend_request_timeout_ms: 30, retry: retry({ statuses: [], timeout: true }) })]),
  );
  begin(ex, 'GET', '/slow', true);
  codec.ended = true;
  const first = ex.upKey;
  await codec.until(3); // the attempt's timer fires: drop, then the retry after its pause
  assert.equal(ex.answerHead(200, undefined), true);
  ex.answered(false, undefined);
  assert.deepEqual(codec.calls, [`send GET /slow to ${first}`, 'drop', `send retry GET /slow to ${otherThan(first)}`]);
  assert.deepEqual(await counter(metrics, 'retry_total'), { timeout: 1 });
  assert.equal(ex.finished, true);
});

void test("the route's request timeout answers 504 and drops the attempt", async () => {
  const { ex, codec } = setup(router([rule({ request_timeout_ms: 30 })]));
  begin(ex, 'GET', '/', true);
  const first = ex.upKey;
  await codec.until(3);
  assert.deepEqual(codec.calls, [`send GET / to ${first}`, 'drop', 'error 504']);
  assert.equal(ex.finished, true);
  // A late answer head after the timeout changes nothing.
  ex.answered(false, undefined);
  assert.equal(codec.calls.length, 3);
});

void test('a redirect is answered by the exchange: no attempt is sent', () => {
  const redirect: Filter = {
    type: 'REQUEST_REDIRECT',
    redirect: { scheme: 'https', hostname: 'example.com', path: null, port: 0, status_code: 301 },
  };
  const { ex, codec } = setup(router([rule({}, [redirect])]));
  begin(ex, 'GET', '/a?b=1', true);
  assert.equal(codec.calls.length, 1);
  assert.match(codec.calls[0] as string, /^redirect 301 https:\/\/example\.com(:\d+)?\/a\?b=1$/);
  assert.equal(ex.finished, true);
});

void test('an endpoint whose breaker opened is skipped: the next request goes to the other one', async () => {
  const { ex, codec, metrics } = setup(router([], { breakers: { consecutiveFailures: 1 } }));
  begin(ex, 'GET', '/', true);
  codec.ended = true;
  const first = ex.upKey;
  assert.equal(ex.answerHead(500, undefined), true, 'no routes: no retry, the 500 is passed on');
  ex.answered(false, undefined);
  // The connection's next request (HTTP/1 reuses its exchange).
  ex.reset();
  for (let i = 0; i < 5; i++) {
    begin(ex, 'GET', '/', true);
    assert.equal(ex.answerHead(200, undefined), true);
    ex.answered(false, undefined);
    ex.reset();
  }
  const second = `send GET / to ${otherThan(first)}`;
  assert.deepEqual(codec.calls, [`send GET / to ${first}`, second, second, second, second, second]);
  assert.deepEqual(await counter(metrics, 'endpoint_ejections_total'), { [SERVICE]: 1 });
});
