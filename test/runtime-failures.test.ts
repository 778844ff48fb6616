// End-to-end, as root (failure handling on the local runtime): three replicas of a web server
// behind two Services (`web`, with an HTTPRoute that retries 5xx and connect failures; `web-plain`, no
// route, no retries), and a meshed client sending GETs as fast as four keep-alive connections allow.
// - One replica made slow (200 ms more per request): within 10 s it gets under 10% of the requests,
//   and the client's p99 comes back down (the figures are printed).
// - One replica killed (and kept down): the runtime takes it out of the endpoints at once (its
//   container ended), so only requests in flight at that moment fail: with retries, zero failures;
//   without, the client's proxy counts exactly the failures the client saw.
// - One replica that fails every request while its readiness probe still passes (it stays an
//   endpoint): the client's proxy ejects it after consecutive failures; with retries, zero failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { show, type Run } from './root-helpers.js';
import { meshTest } from './mesh-harness.js';
import { sumMetric } from './metrics-text.js';

/** A keep-alive web server answering its pod's name, each answer in one write. Files in CONTROL_DIR
 *  change it: `slow-<pod>` adds 200 ms to every answer; `dead-<pod>` makes it exit at start (a killed
 *  replica stays down); `broken-<pod>` makes it drop every request but /healthz without an answer. */
const WEB = `
import http.server, os, sys, time
pod = os.environ["POD_NAME"]
ctl = os.environ["CONTROL_DIR"]
if os.path.exists(os.path.join(ctl, "dead-" + pod)):
    sys.exit(1)
class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path != "/healthz" and os.path.exists(os.path.join(ctl, "broken-" + pod)):
            self.close_connection = True
            return
        if os.path.exists(os.path.join(ctl, "slow-" + pod)):
            time.sleep(0.2)
        body = (pod + "\\n").encode()
        # Head and body in one write: a kill between two writes would cut an answer after its head,
        # which no proxy can retry (the head is already with the client); this test is about requests
        # in flight, not half-sent answers (proxy-http1 tests how those are counted).
        head = "HTTP/1.1 200 OK\\r\\ncontent-length: %d\\r\\n\\r\\n" % len(body)
        self.wfile.write(head.encode() + body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Web).serve_forever()
`;

/** GETs from `host` on N keep-alive connections until the stop file exists; prints one line per
 *  request: seconds since start, status, answering pod (or the error), latency in ms. Creates
 *  `<stop>.<host>.started` once the first answer came, so that the test's clock starts with the traffic. */
const LOAD = `
import http.client, os, sys, threading, time
host, conns, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.time()
out = []
lock = threading.Lock()
def run():
    c = None
    while not os.path.exists(stop):
        start = time.time()
        try:
            if c is None:
                c = http.client.HTTPConnection(host, 80, timeout=10)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read().decode().strip()
            line = f"{start - t0:.3f} {r.status} {body.split()[0] if r.status == 200 else 'error'} {(time.time() - start) * 1000:.1f}"
        except Exception as e:
            c = None
            line = f"{start - t0:.3f} 0 {type(e).__name__} {(time.time() - start) * 1000:.1f}"
        with lock:
            if not out:
                open(stop + "." + host + ".started", "w").close()
            out.append(line)
threads = [threading.Thread(target=run) for _ in range(conns)]
for th in threads: th.start()
for th in threads: th.join()
print("\\n".join(out))
`;

function manifest(dir: string): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env:
            - {name: CONTROL_DIR, value: ${dir}}
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-plain}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  annotations:
    retry.outrigger.io/on: "5xx,connect-failure"
    retry.outrigger.io/attempts: "2"
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
    - backendRefs: [{name: web, port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

interface Sample {
  readonly t: number;
  readonly status: number;
  readonly pod: string;
  readonly ms: number;
}

function parseSamples(text: string): Sample[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [t, status, pod, ms] = l.split(' ');
      return { t: Number(t), status: Number(status), pod: pod ?? '', ms: Number(ms) };
    });
}

/** endpoint_ejections_total of a proxy's metrics text, summed per target_addr (one per Service). */
function ejectionsByTarget(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('endpoint_ejections_total{')) continue;
    const target = /target_addr="([^"]*)"/.exec(line)?.[1] ?? '';
    out.set(target, (out.get(target) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

function p99(xs: readonly Sample[]): number {
  const sorted = xs.map((x) => x.ms).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? NaN;
}

void test(
  'failure handling on the local runtime: a slow replica is avoided, a killed one is retried around or ejected',
  { timeout: 240_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-failures', {
      what: 'the slow and killed replica tests',
      needs: 'iproute2, iptables, util-linux (setpriv) and python3',
      files: { 'web.py': WEB, 'load.py': LOAD },
    });
    if (mesh === undefined) return;
    const { work } = mesh;
    await mesh.up(manifest(work));
    const webs = (await mesh.pods())
      .filter((p) => p.deployment === 'web')
      .map((p) => p.name)
      .sort();
    assert.equal(webs.length, 3);

    const startLoad = (host: string, conns: number, stop: string): Promise<Run> =>
      mesh.spawnExec('client', ['python3', join(work, 'load.py'), host, String(conns), stop]).done;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /** Until every load given its stop file is sending (a loaded machine can take seconds to start one). */
    const sending = async (stop: string, ...hosts: string[]) => {
      const deadline = Date.now() + 60_000;
      while (!hosts.every((h) => existsSync(`${stop}.${h}.started`))) {
        if (Date.now() > deadline) throw new Error(`the load for ${stop} never got an answer`);
        await sleep(100);
      }
    };

    await t.test('one replica of three made 200 ms slower gets under 10% of the requests within 10 s', async () => {
      const slow = webs[0] as string;
      const stop = join(work, 'stop-slow');
      const done = startLoad('web-plain', 4, stop);
      await sending(stop, 'web-plain');
      await sleep(4000);
      const slowAt = Date.now();
      await writeFile(join(work, `slow-${slow}`), '');
      await sleep(20_000);
      await writeFile(stop, '');
      const r = await done;
      assert.equal(r.code, 0, show(r));
      const samples = parseSamples(r.stdout);
      // The load's clock started about when the process did; the marks are relative to the last sample.
      const end = Math.max(...samples.map((s) => s.t));
      const tSlow = end - (Date.now() - slowAt) / 1000;
      const before = samples.filter((s) => s.t < tSlow);
      const adapting = samples.filter((s) => s.t >= tSlow && s.t < tSlow + 10);
      const settled = samples.filter((s) => s.t >= tSlow + 10);
      const share = (xs: readonly Sample[]) => xs.filter((s) => s.pod === slow).length / Math.max(1, xs.length);
      console.log(
        `# slow replica ${slow}: share before ${(share(before) * 100).toFixed(1)}%, first 10 s ${(share(adapting) * 100).toFixed(1)}%, next 10 s ${(share(settled) * 100).toFixed(1)}% ` +
          `(${settled.length} requests); client p99 before ${p99(before).toFixed(1)} ms, first 10 s ${p99(adapting).toFixed(1)} ms, next 10 s ${p99(settled).toFixed(1)} ms`,
      );
      assert.equal(samples.filter((s) => s.status !== 200).length, 0, 'a slow replica fails nothing');
      assert.ok(settled.length > 200, `enough requests to judge: ${settled.length}`);
      assert.ok(share(settled) < 0.1, `the slow replica got ${(share(settled) * 100).toFixed(1)}% after 10 s`);
      assert.ok(
        p99(settled) < 200,
        `the client's p99 after 10 s is ${p99(settled).toFixed(1)} ms: the slow replica is avoided`,
      );
      await rm(join(work, `slow-${slow}`));
    });

    const clientMetrics = (): Promise<string> => mesh.metrics('client');
    const failed = (xs: readonly Sample[]) => xs.filter((s) => s.status !== 200);

    await t.test(
      'one replica of three killed: zero failures with retries; without, the proxy counts what the client saw',
      async () => {
        const victim = webs[1] as string;
        const stopAll = join(work, 'stop-kill');
        const before = sumMetric(await clientMetrics(), 'response_total', {
          authority: 'web-plain',
          classification: 'failure',
        });
        const retried = startLoad('web', 2, stopAll);
        const plain = startLoad('web-plain', 2, stopAll);
        await sending(stopAll, 'web', 'web-plain');
        await sleep(3000);
        // Down for good: its restarts exit at once.
        await writeFile(join(work, `dead-${victim}`), '');
        const status = await mesh.pods();
        const app = status.find((p) => p.name === victim)?.containers.find((c) => c.name === 'http');
        assert.ok(app !== undefined && app.state.state === 'running', JSON.stringify(app));
        process.kill(app.state.state === 'running' ? app.state.pid : 0, 'SIGKILL');
        await sleep(6000);
        await writeFile(stopAll, '');
        const [a, b] = await Promise.all([retried, plain]);
        assert.equal(a.code, 0, show(a));
        assert.equal(b.code, 0, show(b));
        const withRetries = parseSamples(a.stdout);
        const without = parseSamples(b.stdout);
        const text = await clientMetrics();
        const counted =
          sumMetric(text, 'response_total', { authority: 'web-plain', classification: 'failure' }) - before;
        console.log(
          `# killed replica ${victim}: with retries ${withRetries.length} requests, ${failed(withRetries).length} failed (retries ${sumMetric(text, 'retry_total', {})}); ` +
            `without ${without.length} requests, ${failed(without).length} failed, ${counted} counted by the client's proxy as failures`,
        );
        assert.equal(failed(withRetries).length, 0, JSON.stringify(failed(withRetries).slice(0, 5)));
        // The client's failures by kind: a status from the proxy, or 0 and the exception when no answer came.
        const seen = JSON.stringify(failed(without).map((x) => `${x.status} ${x.pod}`));
        assert.equal(
          counted,
          failed(without).length,
          `every failure the client saw is in the proxy's metrics: ${seen}`,
        );
        assert.ok(withRetries.length > 100 && without.length > 100, 'both clients kept sending');
        assert.ok(
          !withRetries.slice(-50).some((s) => s.pod === victim) && !without.slice(-50).some((s) => s.pod === victim),
          'the killed replica is out of the endpoints',
        );
      },
    );

    await t.test(
      'a replica failing every request while its probe passes is ejected; with retries nothing fails',
      async () => {
        const broken = webs[2] as string;
        const stopAll = join(work, 'stop-broken');
        const retried = startLoad('web', 2, stopAll);
        const plain = startLoad('web-plain', 2, stopAll);
        await sending(stopAll, 'web', 'web-plain');
        await sleep(2000);
        const before = ejectionsByTarget(await clientMetrics());
        await writeFile(join(work, `broken-${broken}`), '');
        // Until the client's proxy has ejected the broken replica for both Services (each destination has
        // its breakers), then 4 s more. With two replicas left the balancer compares both on every pick,
        // so a replica whose latency peaked a moment ago gets no request until its estimate decays (time
        // constant 10 s): a fixed wait could end before one Service ever sent it anything.
        const brokenAt = Date.now();
        const deadline = brokenAt + 60_000;
        let ejectedFor: string[] = [];
        while (ejectedFor.length < 2 && Date.now() < deadline) {
          await sleep(500);
          const now = ejectionsByTarget(await clientMetrics());
          ejectedFor = [...now].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k]) => k);
        }
        const ejectedAfterS = (Date.now() - brokenAt) / 1000;
        await sleep(4000);
        await writeFile(stopAll, '');
        const [a, b] = await Promise.all([retried, plain]);
        assert.equal(a.code, 0, show(a));
        assert.equal(b.code, 0, show(b));
        const withRetries = parseSamples(a.stdout);
        const without = parseSamples(b.stdout);
        const text = await clientMetrics();
        const ejections = sumMetric(text, 'endpoint_ejections_total', {});
        console.log(
          `# broken replica ${broken}: with retries ${withRetries.length} requests, ${failed(withRetries).length} failed; ` +
            `without ${without.length} requests, ${failed(without).length} failed; ejections ${ejections} (for both Services within ${ejectedAfterS.toFixed(1)} s)`,
        );
        assert.equal(ejectedFor.length, 2, `ejected for both Services within 60 s: ${ejectedFor.join(', ')}`);
        assert.equal(failed(withRetries).length, 0, JSON.stringify(failed(withRetries).slice(0, 5)));
        assert.ok(failed(without).length > 0, 'without retries the failures reach the client');
        assert.ok(ejections >= 1, `the client's proxy ejected the endpoint (${ejections})`);
        // Ejected, it gets only the occasional probe request: most of the 8 s go to the two healthy ones.
        const late = without.filter((s) => s.t > (without.at(-1)?.t ?? 0) - 4);
        assert.ok(
          late.filter((s) => s.status !== 200).length <= 0.05 * late.length,
          `failures in the last 4 s: ${late.filter((s) => s.status !== 200).length} of ${late.length}`,
        );
      },
    );
  },
);
