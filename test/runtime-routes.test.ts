// End-to-end, as root: Gateway API routes in the proxies. One mesh with two versions of a web
// server behind a Service and an HTTPRoute on it: a 90/10 split lands within ±3% over 2,000 requests,
// `apply` moves it to 50/50 and the next requests follow; a header match sends canary traffic to v2;
// a request timeout produces a 504; a route that matches nothing produces a 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { meshTest } from './mesh-harness.js';
import { WEB_SERVER } from './pod-programs.js';

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

void test(
  'HTTPRoute in the proxies: weighted split, apply, header match, timeout, no match',
  { timeout: 180_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-routes', {
      what: 'the end-to-end routes test',
      files: { 'web.py': WEB_SERVER },
    });
    if (mesh === undefined) return;
    await mesh.up(manifest(mesh.work, 90, 10));

    const count = (n: number, path: string, header?: string) =>
      mesh.countRequests('client', { host: 'web', port: 80, path, header }, n);
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
      await mesh.apply(manifest(mesh.work, 50, 50));
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
  },
);
