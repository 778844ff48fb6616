// End-to-end, as root: a real Prometheus (Debian's `prometheus`) scrapes every proxy of a
// running local mesh with the configuration `outrigger prometheus-config --file-sd --watch` keeps current
// (a pod added later becomes a target by itself); a success-rate and a
// p99 query give exactly what the traffic made; every query of grafana/outrigger.json parses and returns
// data. `outrigger tap deploy/web` streams the requests of both web pods; traces cross the mesh to a small
// OTLP/HTTP receiver in this test, one span per side, with the mesh's attributes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, show } from './root-helpers.js';
import { hostOf, literal, meshTest, prefixOf } from './mesh-harness.js';
import { freePort } from './basics.js';

// / answers 200 at once, /fail 500, /slow 200 after 220 ms (the (200, 300] ms latency bucket).
const WEB = `
import http.server, os, time
class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(0.22)
        status = 500 if self.path.startswith("/fail") else 200
        body = (os.environ.get("POD_NAME", "") + " " + self.path + " tp=" + str(self.headers.get("traceparent")) + "\\n").encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Web).serve_forever()
`;

// GETs each "path count" pair from web:80 on one keep-alive connection (optional extra header), the
// paths spread evenly through the run (a failure never follows a failure, so no circuit breaker trips);
// prints {"status": count} as JSON.
const GEN = `
import http.client, json, sys
headers = dict([sys.argv[1].split(":", 1)]) if sys.argv[1] != "-" else {}
c = http.client.HTTPConnection("web", 80, timeout=10)
args = sys.argv[2:]
seq = []
for i in range(0, len(args), 2):
    n = int(args[i + 1])
    seq += [((k + 0.5) / n, i, args[i]) for k in range(n)]
seq.sort()
out = {}
for _, _, path in seq:
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    out[str(r.status)] = out.get(str(r.status), 0) + 1
print(json.dumps(out))
`;

function manifest(dir: string, webReplicas = 2): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: ${webReplicas}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          readinessProbe:
            httpGet: {path: /ping, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
        - {name: sleep, command: [sleep, infinity]}
`;
}

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
}

/** A small OTLP/HTTP JSON receiver on every address (the proxies reach it on the bridge). */
async function otlpReceiver(): Promise<{ port: number; spans: Span[]; resources: string[]; close(): Promise<void> }> {
  const spans: Span[] = [];
  const resources: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      try {
        const j = JSON.parse(body) as { resourceSpans: { resource: unknown; scopeSpans: { spans: Span[] }[] }[] };
        for (const rs of j.resourceSpans) {
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push(s);
              resources.push(JSON.stringify(rs.resource));
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    spans,
    resources,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const attr = (s: Span, k: string) => {
  const v = s.attributes.find((a) => a.key === k)?.value;
  return v?.stringValue ?? v?.intValue;
};

interface PromResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

void test(
  'Prometheus scrapes the mesh; success rate, p99 and every Grafana query; tap deploy/web; traces across the mesh',
  { timeout: 300_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-observe', {
      what: 'the end-to-end observability test',
      tools: [['prometheus', '--version']],
      needs: 'iproute2, iptables, util-linux (setpriv), curl, python3 and prometheus',
      files: { 'web.py': WEB, 'gen.py': GEN },
    });
    if (mesh === undefined) return;
    const { work, stateDir } = mesh;
    const common = ['--state-dir', stateDir];
    /** The processes this test starts: Prometheus and `prometheus-config --watch` (stopped before the
     *  mesh goes down, whatever happens, by pid). */
    const started: { prom?: ChildProcess; watch?: ChildProcess } = {};
    const otlp = await otlpReceiver();
    mesh.defer(async () => {
      if (started.watch?.pid !== undefined && started.watch.exitCode === null) started.watch.kill('SIGKILL');
      const prom = started.prom;
      if (prom?.pid !== undefined && prom.exitCode === null) {
        prom.kill('SIGTERM');
        await new Promise((r) => {
          const timer = setTimeout(() => {
            prom?.kill('SIGKILL');
            r(undefined);
          }, 5000);
          prom?.once('exit', () => {
            clearTimeout(timer);
            r(undefined);
          });
        });
      }
      await otlp.close();
    });
    await mesh.up(manifest(work), ['--trace-collector', `http://${hostOf(mesh.net.podCidr, 1)}:${otlp.port}`]);

    // The tap token: root only.
    const tokenText = (await readFile(join(stateDir, 'tap-token'), 'utf8')).trim();
    assert.ok(tokenText.length >= 32);
    const st = spawnSync('stat', ['-c', '%a %u', join(stateDir, 'tap-token')], { encoding: 'utf8' });
    assert.equal(st.stdout.trim(), '600 0');

    // Prometheus, with the configuration the CLI prints (every proxy, labelled), scraping every second.
    const pc = await mesh.cli(['prometheus-config', '--scrape-interval', '1s']);
    assert.equal(pc.code, 0, show(pc));
    assert.match(pc.stdout, /job_name: outrigger-proxy/);
    for (const label of ['namespace: default', 'deployment: web', 'deployment: client', 'pod: web-'])
      assert.ok(pc.stdout.includes(label), `${label} in\n${pc.stdout}`);
    const promYml = join(work, 'prometheus.yml');
    await writeFile(promYml, pc.stdout);
    const check = spawnSync('promtool', ['check', 'config', promYml], { encoding: 'utf8' });
    if (check.error === undefined) assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    // The file_sd form, kept up to date by --watch: what this Prometheus runs with, so that a pod added
    // later becomes a target by itself (checked at the end).
    const sdFile = join(work, 'targets.json');
    const watch = spawn(
      process.execPath,
      [
        join(ROOT, 'bin/outrigger.js'),
        'prometheus-config',
        ...common,
        '--scrape-interval',
        '1s',
        '--file-sd',
        sdFile,
        '--watch',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.watch = watch;
    let sdYml = '';
    watch.stdout.on('data', (d: Buffer) => (sdYml += d.toString()));
    for (const t0 = Date.now(); !sdYml.includes(sdFile);) {
      if (watch.exitCode !== null || Date.now() - t0 > 30_000)
        assert.fail(`prometheus-config --watch printed: ${sdYml}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const groups = JSON.parse(await readFile(sdFile, 'utf8')) as {
      targets: string[];
      labels: Record<string, string>;
    }[];
    assert.deepEqual(groups.map((g) => g.labels.deployment).sort(), ['client', 'web', 'web']);
    const target = new RegExp(`^${literal(prefixOf(mesh.net.podCidr))}\\.\\d+:4191$`);
    assert.ok(groups.every((g) => target.test(g.targets[0] as string)));
    const sdYmlFile = join(work, 'prometheus-sd.yml');
    await writeFile(sdYmlFile, sdYml);
    if (check.error === undefined) {
      const c2 = spawnSync('promtool', ['check', 'config', sdYmlFile], { encoding: 'utf8' });
      assert.equal(c2.status, 0, `promtool: ${c2.stdout}${c2.stderr}`);
    }
    const promPort = await freePort();
    const promLog: string[] = [];
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${sdYmlFile}`,
        `--storage.tsdb.path=${join(work, 'prom-data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    started.prom = prom;
    prom.stdout?.on('data', (d: Buffer) => promLog.push(d.toString()));
    prom.stderr?.on('data', (d: Buffer) => promLog.push(d.toString()));
    const query = async (q: string): Promise<PromResult> => {
      const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      return (await r.json()) as PromResult;
    };
    const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 60_000) => {
      const end = Date.now() + ms;
      for (;;) {
        if (prom.exitCode !== null)
          assert.fail(`prometheus exited (${prom.exitCode}): ${promLog.join('').slice(-2000)}`);
        if (await ok().catch(() => false)) return;
        if (Date.now() > end)
          assert.fail(`timed out waiting for ${what}; prometheus log: ${promLog.join('').slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    // Every proxy is up as a target (3 pods).
    await waitFor('3 proxies scraped', async () => {
      const r = await query('sum(up{job="outrigger-proxy"})');
      return Number(r.data?.result[0]?.value[1]) === 3;
    });

    // Tap both web pods while the traffic runs: the requests to /tapme, as JSON lines.
    const tapOut: string[] = [];
    const tapProc = spawn(
      process.execPath,
      [join(ROOT, 'bin/outrigger.js'), 'tap', 'deploy/web', ...common, '--path', '/tapme', '--max', '6', '-o', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let tapErr = '';
    tapProc.stdout.on('data', (d: Buffer) => tapOut.push(d.toString()));
    tapProc.stderr.on('data', (d: Buffer) => (tapErr += d.toString()));
    const tapDone = new Promise<number | null>((r) => tapProc.once('exit', (c) => r(c)));
    t.after(() => {
      if (tapProc.exitCode === null) tapProc.kill('SIGKILL');
    });
    // The CLI says on stderr when every session is open.
    const tapStart = Date.now();
    while (!tapErr.includes('tapping')) {
      if (tapProc.exitCode !== null || Date.now() - tapStart > 30_000) assert.fail(`tap did not start: ${tapErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // The traffic: 150 fast 200s, 30 500s, 20 slow 200s (220 ms): success rate 170/200 = 0.85; p99 is
    // in the (200, 300] ms bucket: rank 198 of 200, 180 below 200 ms, so 200 + (198 - 180) / 20 * 100 = 290.
    const traffic = ['-', '/', '150', '/fail', '30', '/slow', '20'];
    const gen = await mesh.exec('deploy/client', ['python3', join(work, 'gen.py'), ...traffic], { timeoutMs: 120_000 });
    assert.equal(gen.code, 0, show(gen));
    assert.deepEqual(JSON.parse(gen.stdout), { '200': 170, '500': 30 });
    const tapArgs = ['python3', join(work, 'gen.py'), 'x-tap-secret:hidden', '/tapme', '6'];
    const tapme = await mesh.exec('deploy/client', tapArgs, { timeoutMs: 60_000 });
    assert.equal(tapme.code, 0, show(tapme));
    // A traced request.
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const traceArgs = ['curl', '-sS', '-H', `traceparent: ${parent}`, 'http://web/traced'];
    const traced = await mesh.exec('deploy/client', traceArgs, { timeoutMs: 60_000 });
    assert.equal(traced.code, 0, show(traced));
    // The app sees the same trace, its parent the server-side proxy's span.
    const appTp = /tp=00-([0-9a-f]{32})-([0-9a-f]{16})-01/.exec(traced.stdout);
    assert.ok(appTp, traced.stdout);
    assert.equal(appTp[1], '0af7651916cd43dd8448eb211c80319c');

    // Tap: six events in all, from both web pods, inbound, over mesh TLS from the client's identity.
    const code = await Promise.race([tapDone, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    assert.equal(code, 0, `tap: ${code} ${tapErr}`);
    const events = tapOut
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(events.length, 6, tapOut.join(''));
    for (const e of events) {
      assert.equal(e.direction, 'inbound');
      assert.equal(e.path, '/tapme');
      assert.equal(e.status, 200);
      assert.equal(e.tls, true);
      assert.equal(e.client_id, 'spiffe://cluster.local/ns/default/sa/default');
      assert.equal(e.route, 'default');
      assert.equal(e.dst_workload, 'web');
      assert.ok((e.headers as string[]).includes('x-tap-secret'));
    }
    assert.ok(!tapOut.join('').includes('hidden'), 'no header values unless asked');
    // The proxies refuse a tap without the token.
    const pods = await mesh.pods();
    const webIp = pods.find((p) => p.name.startsWith('web-'))?.ip;
    assert.ok(webIp !== undefined);
    assert.equal((await fetch(`http://${webIp}:4191/tap`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await fetch(`http://${webIp}:4191/tap`)).status, 401);

    // Prometheus: wait until the scrapes hold all 200 requests on the web side.
    const webSel = 'direction="inbound", deployment="web", authority="web"';
    await waitFor(
      '207 requests scraped',
      async () => Number((await query(`sum(route_response_total{${webSel}})`)).data?.result[0]?.value[1]) >= 207,
    );
    // Counters since the start: the traffic's own figures, not a rate's extrapolation. Probes (authority
    // podIP:8080) are left out by authority="web". 170 + 6 (/tapme) + 1 (/traced) successes of 207.
    const success = await query(
      `sum(route_response_total{${webSel}, classification="success"}) / sum(route_response_total{${webSel}})`,
    );
    const successValue = Number(success.data?.result[0]?.value[1]);
    assert.ok(Math.abs(successValue - 177 / 207) < 1e-9, `success rate ${successValue}, expected ${177 / 207}`);
    const p99 = await query(`histogram_quantile(0.99, sum by (le) (route_response_latency_ms_bucket{${webSel}}))`);
    const p99Value = Number(p99.data?.result[0]?.value[1]);
    // Where the 207 requests landed, as the web proxies counted them: the 187 quick ones (150 /, 30 /fail,
    // 6 /tapme, 1 /traced) under 200 ms, the 20 slow ones (220 ms) above it. A slow one may take past
    // 300 ms on a loaded machine, so the p99 expected is computed from the buckets as they are (rank
    // 0.99 * 207 = 204.93, interpolated in its bucket as Prometheus does); with all 20 in (200, 300] it
    // is 200 + (204.93 - 187) / 20 * 100 = 289.65.
    const buckets = await query(`sum by (le) (route_response_latency_ms_bucket{${webSel}})`);
    const cumulative = (buckets.data?.result ?? [])
      .map((r) => ({ le: r.metric.le === '+Inf' ? Infinity : Number(r.metric.le), count: Number(r.value[1]) }))
      .sort((a, b) => a.le - b.le);
    const at = (le: number) => cumulative.find((b) => b.le === le)?.count;
    assert.equal(at(200), 187, `the quick requests are under 200 ms: ${JSON.stringify(cumulative)}`);
    assert.ok((at(300) ?? 0) >= 187 + 18, `most slow requests in (200, 300] ms: ${JSON.stringify(cumulative)}`);
    assert.equal(at(Infinity), 207);
    const rank = 0.99 * 207;
    const i = cumulative.findIndex((b) => b.count >= rank);
    const lower = cumulative[i - 1] ?? { le: 0, count: 0 };
    const upper = cumulative[i];
    assert.ok(upper !== undefined && Number.isFinite(upper.le), JSON.stringify(cumulative));
    const expectP99 = lower.le + ((upper.le - lower.le) * (rank - lower.count)) / (upper.count - lower.count);
    assert.ok(Math.abs(p99Value - expectP99) < 1e-6, `p99 ${p99Value} ms, expected ${expectP99}`);
    if (at(300) === 207) assert.ok(Math.abs(p99Value - 289.65) < 1e-6, `p99 ${p99Value} ms, expected 289.65`);
    // The client's side of the same traffic, by destination workload: 30 failures to web.
    const byDst = await query(
      'sum by (dst_deployment, dst_namespace) (route_response_total{direction="outbound", deployment="client", classification="failure"})',
    );
    assert.deepEqual(
      byDst.data?.result.map((r) => [r.metric.dst_namespace, r.metric.dst_deployment, r.value[1]]),
      [['default', 'web', '30']],
    );
    // The proxies' own figures.
    for (const m of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds']) {
      const r = await query(`min(${m}{job="outrigger-proxy"})`);
      assert.ok(Number(r.data?.result[0]?.value[1]) > 0, `${m}: ${JSON.stringify(r)}`);
    }

    // Every query of the Grafana dashboard, its variables substituted, parses and returns data.
    const dash = JSON.parse(await readFile(join(ROOT, 'grafana/outrigger.json'), 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { name: string; type: string; query?: { query: string } }[] };
    };
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((tg) => ({ title: p.title, expr: tg.expr })));
    assert.ok(exprs.length >= 12, `${exprs.length} queries`);
    const subst = (e: string, deployment: string) =>
      e.replaceAll('$__rate_interval', '2m').replaceAll('$namespace', 'default').replaceAll('$deployment', deployment);
    for (const v of dash.templating.list) {
      if (v.type !== 'query' || v.query === undefined) continue;
      const m = /^label_values\((.*), (\w+)\)$/.exec(v.query.query);
      assert.ok(m, v.query.query);
      const r = await fetch(
        `http://127.0.0.1:${promPort}/api/v1/series?match[]=${encodeURIComponent(subst(m[1] as string, '.+'))}`,
      );
      const j = (await r.json()) as { status: string; data: Record<string, string>[] };
      assert.equal(j.status, 'success');
      assert.ok(
        j.data.some((s) => s[m[2] as string] !== undefined),
        `variable ${v.name}: no ${m[2]}`,
      );
    }
    const empty: string[] = [];
    for (const { title, expr } of exprs) {
      // Inbound panels look at web, outbound ones (by route, by destination) at the client.
      const deployment = expr.includes('direction="outbound"') ? 'client' : 'web|client';
      const r = await query(subst(expr, deployment));
      assert.equal(r.status, 'success', `${title}: ${expr}: ${r.error}`);
      const vals = (r.data?.result ?? []).map((x) => Number(x.value[1]));
      if (vals.length === 0 || vals.every((x) => Number.isNaN(x))) empty.push(`${title}: ${subst(expr, deployment)}`);
    }
    assert.deepEqual(empty, [], 'every dashboard query returns data');

    // Traces: the traced request left one span on each side, in the caller's trace, with mesh attributes.
    await waitFor(
      'the spans of the traced request',
      async () => otlp.spans.filter((s) => s.traceId === '0af7651916cd43dd8448eb211c80319c').length >= 2,
      15_000,
    );
    const mine = otlp.spans.filter((s) => s.traceId === '0af7651916cd43dd8448eb211c80319c');
    const client = mine.find((s) => s.kind === 3);
    const server = mine.find((s) => s.kind === 2);
    assert.ok(client && server, JSON.stringify(mine));
    assert.equal(client.parentSpanId, 'b7ad6b7169203331');
    assert.equal(server.parentSpanId, client.spanId, 'the server side is a child of the client side');
    assert.equal(appTp[2], server.spanId, 'the app sees the server-side span as its parent');
    assert.equal(attr(client, 'outrigger.server_id'), 'spiffe://cluster.local/ns/default/sa/default');
    assert.equal(attr(server, 'outrigger.client_id'), 'spiffe://cluster.local/ns/default/sa/default');
    assert.equal(attr(client, 'outrigger.dst_deployment'), 'web');
    assert.equal(attr(server, 'url.path'), '/traced');
    assert.equal(attr(server, 'http.response.status_code'), '200');
    assert.ok(
      otlp.resources.some((r) => r.includes('"client"')) && otlp.resources.some((r) => r.includes('"web"')),
      'service.name is the workload',
    );

    // A third web pod: --watch rewrites the targets file and Prometheus scrapes the new proxy by itself.
    await mesh.apply(manifest(work, 3), { timeoutMs: 120_000 });
    await waitFor(
      '4 proxies scraped after the scale-up',
      async () => Number((await query('sum(up{job="outrigger-proxy"})')).data?.result[0]?.value[1]) === 4,
    );
    const web3 = await query('count(up{job="outrigger-proxy", deployment="web"} == 1)');
    assert.equal(web3.data?.result[0]?.value[1], '3');
  },
);
