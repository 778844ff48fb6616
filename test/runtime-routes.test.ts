// End-to-end, as root: Gateway API routes in the proxies. One mesh with two versions of a web
// server behind a Service and an HTTPRoute on it: a 90/10 split lands within ±3% over 2,000 requests,
// `apply` moves it to 50/50 and the next requests follow; a header match sends canary traffic to v2;
// a request timeout produces a 504; a route that matches nothing produces a 404.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, MESH_TOOLS, meshPreconditions, show, unavailable as unavailable_, meshWorkDir } from './root-helpers.js';
import { sweepBridge } from '../src/runtime/net/index.js';
import { WEB_SERVER } from './pod-programs.js';

function unavailable(t: TestContext, why: string): void {
  unavailable_(t, 'runtime-routes', 'the end-to-end routes test', why, 'iproute2, iptables, util-linux (setpriv), curl and python3');
}


// N GETs on one keep-alive connection (with an optional header); prints how many each version answered.
const COUNT = `
import http.client, json, sys
n, path = int(sys.argv[1]), sys.argv[2]
headers = dict([sys.argv[3].split(":", 1)]) if len(sys.argv) > 3 else {}
c = http.client.HTTPConnection("web", 80, timeout=10)
counts = {}
for i in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    text = r.read().decode()
    body = text.split(" ")[0] if r.status == 200 else f"status-{r.status}"
    counts[body] = counts.get(body, 0) + 1
print(json.dumps(counts))
`;

function manifest(dir: string, v1: number, v2: number): string {
  const deploy = (version: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-${version}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web, version: ${version}}}
  template:
    metadata: {labels: {app: web, version: ${version}}}
    spec:
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env: [{name: GREETING, value: ${version}}]
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web-${version}}
spec:
  selector: {app: web, version: ${version}}
  ports: [{name: http, port: 80, targetPort: 8080}]
`;
  return `${deploy('v1')}---${deploy('v2')}---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
    # Same path as the split below and one header more: this rule wins for canary requests (Gateway API
    # precedence: the longest path first, then the most header matches).
    - matches: [{path: {type: PathPrefix, value: /app}, headers: [{name: x-canary, value: "yes"}]}]
      backendRefs: [{name: web-v2, port: 80}]
    - matches: [{path: {type: PathPrefix, value: /slow}}]
      backendRefs: [{name: web-v1, port: 80}]
      timeouts: {request: 300ms}
    - matches: [{path: {type: PathPrefix, value: /app}}]
      backendRefs:
        - {name: web-v1, port: 80, weight: ${v1}}
        - {name: web-v2, port: 80, weight: ${v2}}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

void test('HTTPRoute in the proxies: weighted split, apply, header match, timeout, no match', { timeout: 180_000 }, async (t) => {
  const why = meshPreconditions(MESH_TOOLS);
  if (why) return unavailable(t, why);

  const tag = (process.pid + 21) % 10000;
  const bridge = `ortr${tag}`;
  const work = await meshWorkDir('outrigger-routes-');
  const stateDir = join(work, 'state');
  const common = ['--state-dir', stateDir];
  t.after(async () => {
    await cli(['down', ...common], 60_000).catch(() => undefined);
    await sweepBridge(bridge).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });
  await writeFile(join(work, 'web.py'), WEB_SERVER);
  await writeFile(join(work, 'count.py'), COUNT);
  const file = join(work, 'mesh.yaml');
  await writeFile(file, manifest(work, 90, 10));
  const up = await cli([
    'up', '-f', file, ...common, '--bridge', bridge, '--pod-cidr', `10.242.${process.pid % 250}.0/24`,
    '--service-cidr', `10.99.${process.pid % 250}.0/24`, '--control-port', String(20000 + tag),
  ]);
  assert.equal(up.code, 0, show(up));

  const count = async (n: number, path: string, header?: string): Promise<Record<string, number>> => {
    const r = await cli(['exec', 'client', ...common, '--', 'python3', join(work, 'count.py'), String(n), path, ...(header !== undefined ? [header] : [])], 120_000);
    assert.equal(r.code, 0, show(r));
    return JSON.parse(r.stdout) as Record<string, number>;
  };
  const within = (counts: Record<string, number>, n: number, v2Share: number) => {
    const v2 = (counts.v2 ?? 0) / n;
    console.log(`# split: ${JSON.stringify(counts)} → v2 ${(v2 * 100).toFixed(1)}% (want ${v2Share * 100}% ± 3)`);
    assert.equal((counts.v1 ?? 0) + (counts.v2 ?? 0), n, JSON.stringify(counts));
    assert.ok(Math.abs(v2 - v2Share) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)}%: ${JSON.stringify(counts)}`);
  };

  await t.test('a 90/10 split over 2,000 requests lands within ±3%', async () => {
    within(await count(2000, '/app/x'), 2000, 0.1);
  });

  await t.test('apply moves it to 50/50; the requests after it follow', async () => {
    await writeFile(file, manifest(work, 50, 50));
    const r = await cli(['apply', '-f', file, ...common]);
    assert.equal(r.code, 0, show(r));
    await new Promise((res) => setTimeout(res, 1000)); // the bound: in force within a second
    // 4,000 here: at 50/50 the standard deviation of 2,000 draws is 1.1%, so ±3% would fail by chance
    // about once in 150 runs; with 4,000 it is 0.8% (±3% is 3.8 of them).
    within(await count(4000, '/app/y'), 4000, 0.5);
  });

  await t.test('a header match sends canary requests to v2 only', async () => {
    assert.deepEqual(await count(50, '/app/z', 'x-canary:yes'), { v2: 50 });
  });

  await t.test('timeouts.request gives a 504 when the backend is slower', async () => {
    const started = Date.now();
    assert.deepEqual(await count(1, '/slow'), { 'status-504': 1 });
    console.log(`# /slow answered after ${Date.now() - started} ms (incl. exec) with 504`);
  });

  await t.test('a request no rule matches gets a 404 from the proxy', async () => {
    assert.deepEqual(await count(3, '/elsewhere'), { 'status-404': 3 });
  });
});
