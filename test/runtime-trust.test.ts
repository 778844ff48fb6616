// End-to-end, as root: the trust rotation of a running mesh. A meshed web Deployment behind a Service and
// two meshed clients calling it continuously (one opening a connection per request, one keeping its
// connection) through mutual TLS, while `outrigger trust rotate --anchor` publishes the old and new
// anchor, switches issuance (the proxies renew at once, though their certificates live 24 h), and drops
// the old anchor: no request fails, counted by the clients and in every proxy's metrics, and at the end
// every proxy holds a certificate from the new issuer and trusts only the new anchor. Then an
// issuer-only rotation interrupted by `outrigger down` is resumed after `up` by the next `trust rotate`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { meshTest, type Mesh } from './mesh-harness.js';
import { sumMetric } from './metrics-text.js';
import { WEB_SERVER } from './pod-programs.js';
import type { TrustStatus } from '../src/daemon/trust.js';

/** An HTTP/2 server without TLS (h2c, prior knowledge) on :8081 answering `h2 <POD_NAME> <path>`. */
const H2_SERVER = `
import http2 from 'node:http2';
http2
  .createServer((req, res) => res.end(\`h2 \${process.env.POD_NAME} \${req.url}\\n\`))
  .listen(8081, () => console.log('h2c on 8081'));
`;

/** h2load runs of 200 requests (2 connections, 4 streams each) until the stop file exists; their
 *  summaries on stdout. */
const H2_LOOP = `
while [ ! -e "$1" ]; do h2load -n 200 -c 2 -m 4 http://h2:81/h2 | grep -E '^(requests|status codes):' || echo "requests: h2load failed"; done
`;

function manifest(dir: string): string {
  return `
apiVersion: v1
kind: ServiceAccount
metadata: {name: web-sa}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web-sa
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - {name: GREETING, value: hello}
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
        - name: h2
          command: [${process.execPath}, ${join(dir, 'h2.mjs')}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          readinessProbe:
            tcpSocket: {port: 8081}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: h2}
spec:
  selector: {app: web}
  ports: [{port: 81, targetPort: 8081}]
---
apiVersion: v1
kind: Pod
metadata: {name: client-a}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
---
apiVersion: v1
kind: Pod
metadata: {name: client-b}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

async function trustStatus(mesh: Mesh): Promise<TrustStatus> {
  const r = await mesh.cli(['trust', 'status', '-o', 'json'], 30_000);
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout) as TrustStatus;
}

/** Failed responses and TLS handshake errors in every proxy of the mesh. */
async function failures(mesh: Mesh, pods: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of pods) {
    const m = await mesh.metrics(p);
    out[p] =
      sumMetric(m, 'response_total', { classification: 'failure' }) + sumMetric(m, 'tls_handshake_errors_total', {});
  }
  return out;
}

/** Every proxy trusts exactly `anchors` and holds a certificate from `issuer`. */
function assertEveryProxy(s: TrustStatus, anchors: readonly string[], issuer: string, n: number): void {
  assert.equal(s.proxies.length, n, JSON.stringify(s.proxies));
  for (const p of s.proxies) {
    assert.equal(p.error, undefined, `${p.pod}: ${p.error ?? ''}`);
    assert.deepEqual([...p.anchors].sort(), [...anchors].sort(), `${p.pod} trusts ${p.anchors.join(', ')}`);
    assert.equal(p.issuer, issuer, `${p.pod} holds a certificate from ${p.issuer}`);
  }
}

void test(
  'trust rotation: a full anchor rotation under load with no failed request; an interrupted rotation resumes',
  { timeout: 600_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-trust', {
      what: 'the end-to-end trust rotation test',
      tools: [['h2load', '--version']],
      needs: 'iproute2, iptables, util-linux (setpriv), curl, python3 and nghttp2-client (h2load)',
      files: { 'web.py': WEB_SERVER, 'h2.mjs': H2_SERVER, 'h2-loop.sh': H2_LOOP },
    });
    if (mesh === undefined) return;
    await mesh.up(manifest(mesh.work));
    const pods = (await mesh.pods()).map((p) => p.name);
    assert.equal(pods.length, 4, pods.join(', '));

    const before = await trustStatus(mesh);
    assert.equal(before.stage, 'idle');
    assert.equal(before.bundle.length, 1);
    assert.equal(before.anchorKeyKept, true);
    const oldAnchor = before.bundle[0]?.fingerprint ?? '';
    assertEveryProxy(before, [oldAnchor], before.issuer.fingerprint, 4);

    await t.test(
      'trust rotate --anchor under load: 0 failed requests, every proxy on the new issuer and anchor',
      async () => {
        const failedBefore = await failures(mesh, pods);
        const a = mesh.loadLoop('client-a', 'web', 80, '/a');
        const b = mesh.loadLoop('client-b', 'web', 80, '/b', { keepAlive: true });
        // HTTP/2 end to end: h2load from client-a to the h2c server, through the proxies' mTLS.
        const h2 = mesh.spawnExec('client-a', ['sh', mesh.path('h2-loop.sh'), mesh.stopFile]);
        // Load running before the rotation starts.
        await new Promise((r) => setTimeout(r, 2000));
        const r = await mesh.cli(['trust', 'rotate', '--anchor', '--timeout', '120s'], 400_000);
        assert.equal(r.code, 0, show(r));
        for (const stage of ['1/3', '2/3', '3/3'])
          assert.match(r.stdout, new RegExp(`^stage ${stage}: `, 'm'), r.stdout);
        assert.match(r.stdout, /waiting until every proxy trusts both anchors/);
        assert.match(r.stdout, /waiting until every proxy holds a certificate from the new issuer/);
        assert.match(r.stdout, /^ {2}4\/4 proxies$/m);
        assert.match(r.stdout, /^done: /m);
        // And some more load after it.
        await new Promise((res) => setTimeout(res, 2000));
        const sa = await a.stop();
        const sb = await b.stop();
        const h2out = (await h2.done).stdout;
        const h2runs = [
          ...h2out.matchAll(
            /^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/gm,
          ),
        ];
        const h2codes = [...h2out.matchAll(/^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/gm)];
        assert.ok(!h2out.includes('h2load failed') && h2runs.length > 0, h2out);
        const h2ok = h2runs.reduce((n, m) => n + Number(m[2]), 0);
        const h2bad = h2runs.reduce((n, m) => n + Number(m[3]) + Number(m[4]) + Number(m[5]), 0);
        const h2non2xx = h2codes.reduce((n, m) => n + Number(m[2]) + Number(m[3]) + Number(m[4]), 0);
        console.log(`# load: h2load ${h2ok} succeeded, ${h2bad} failed, ${h2non2xx} not 2xx`);
        assert.equal(h2bad, 0, h2out);
        assert.equal(h2non2xx, 0, h2out);
        assert.ok(h2ok > 0);
        console.log(`# load: client-a ${sa.ok} ok ${sa.fail} failed, client-b ${sb.ok} ok ${sb.fail} failed`);
        assert.equal(sa.fail, 0, JSON.stringify(sa.errors.slice(0, 5)));
        assert.equal(sb.fail, 0, JSON.stringify(sb.errors.slice(0, 5)));
        assert.ok(sa.ok > 0 && sb.ok > 0);
        assert.deepEqual(
          await failures(mesh, pods),
          failedBefore,
          'no failed response nor TLS handshake error in any proxy',
        );

        const after = await trustStatus(mesh);
        assert.equal(after.stage, 'idle');
        assert.equal(after.bundle.length, 1);
        const newAnchor = after.bundle[0]?.fingerprint ?? '';
        assert.notEqual(newAnchor, oldAnchor);
        assert.notEqual(after.issuer.fingerprint, before.issuer.fingerprint);
        assertEveryProxy(after, [newAnchor], after.issuer.fingerprint, 4);
        // The proxies' metrics say the same.
        const m = await mesh.metrics('client-a');
        assert.equal(sumMetric(m, 'identity_trust_anchors', { fingerprint: newAnchor }), 1, m);
        assert.equal(sumMetric(m, 'identity_trust_anchors', {}), 1);
        assert.equal(sumMetric(m, 'identity_cert_issuer', { fingerprint: after.issuer.fingerprint }), 1);
      },
    );

    await t.test('an issuer rotation interrupted by down resumes after up; the state survives', async () => {
      const start = await trustStatus(mesh);
      const anchor = start.bundle[0]?.fingerprint ?? '';
      // A rotation that cannot finish its first wait: the timeout stops it at a recorded stage.
      const cut = await mesh.cli(['trust', 'rotate', '--timeout', '1ms'], 60_000);
      assert.equal(cut.code, 1, show(cut));
      assert.match(cut.stdout, /stopped: stage both: .* not there after/);
      assert.match(cut.stdout, /`outrigger trust rotate` resumes it/);
      const stopped = await trustStatus(mesh);
      assert.equal(stopped.stage, 'both');
      assert.equal(stopped.running, false);
      // The daemon goes away and comes back: the record and the CA files survive it.
      const down = await mesh.cli(['down'], 120_000);
      assert.equal(down.code, 0, show(down));
      await mesh.up(manifest(mesh.work));
      const back = await trustStatus(mesh);
      assert.equal(back.stage, 'both', 'the recorded stage survives down/up');
      const resumed = await mesh.cli(['trust', 'rotate', '--timeout', '120s'], 400_000);
      assert.equal(resumed.code, 0, show(resumed));
      assert.match(resumed.stdout, /^rotating from stage 1\/3 \(both\)$/m);
      const end = await trustStatus(mesh);
      assert.equal(end.stage, 'idle');
      assert.deepEqual(
        end.bundle.map((b) => b.fingerprint),
        [anchor],
        'an issuer rotation keeps the anchor',
      );
      assert.notEqual(end.issuer.fingerprint, start.issuer.fingerprint);
      assertEveryProxy(end, [anchor], end.issuer.fingerprint, 4);
      const r = await mesh.run('client-a', ['curl', '-sS', '-m', '10', '--fail', 'http://web/after']);
      assert.match(r, /^hello web-\S+ \/after\n$/);
    });
  },
);
