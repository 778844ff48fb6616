// End-to-end, as root: authorization policy and rate limiting, enforced by each server pod's
// own proxy. One mesh started with `up --default-inbound-policy all-authenticated`; one web pod serves
// several ports, each covered by a different Server (or by none), and clients are meshed pods with
// different service accounts and unmeshed pods:
//   - all-authenticated (the mesh default): a meshed client gets through, an unmeshed one gets 403 over
//     HTTP (and HTTP/2, gRPC status 7) and its opaque TCP connection is closed at once;
//   - route-level rules: GET /public open to all, POST /admin only for service account ops;
//   - defaults: a namespace annotation overrides the mesh's, a pod annotation the namespace's;
//   - a spoofed outrigger-client-id header from an unmeshed client grants nothing and never reaches the app;
//   - live change: removing an authorization denies new requests within 1 s; a request in flight
//     finishes under the rule it started with; an invalid policy is refused and the previous one stays;
//   - rate limits: at 2x the limit for 10 s the accepted rate is within 5% of it, per identity and with
//     an override, then for the total after a live change;
//   - CIDR-based network authentication with an exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { literal, meshTest, prefixOf } from './mesh-harness.js';

/** HTTP/1.1 on ports 8080-8083 answering `<port> <method> <path> id=<outrigger-client-id>` (paths with
 *  "slow" after 3 s), and on 9000 and 9001 an echo that answers "pong" to a line. */
const WEB = `
import http.server, socket, threading, time
class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n: self.rfile.read(n)
        if "slow" in self.path: time.sleep(3)
        body = f"{self.server.server_address[1]} {self.command} {self.path} id={self.headers.get('outrigger-client-id', '')}\\n".encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = answer
    do_POST = answer
    def log_message(self, *args):
        pass
for port in (8080, 8081, 8082, 8083):
    s = http.server.ThreadingHTTPServer(("0.0.0.0", port), Web)
    threading.Thread(target=s.serve_forever, daemon=True).start()
def echo(c):
    try:
        c.recv(100)
        c.sendall(b"pong\\n")
    except OSError:
        pass
    c.close()
def serve(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(9001,), daemon=True).start()
serve(9000)
`;

/** Requests at a fixed rate (open loop, one keep-alive connection) for a duration, or one request
 *  (rate 0); prints the statuses, the last body and a Retry-After seen. */
const LOAD = `
import http.client, json, sys, time
host, port, method, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rate, seconds = float(sys.argv[5]), float(sys.argv[6])
hdrs = dict(h.split(":", 1) for h in sys.argv[7:])
n = max(1, int(rate * seconds))
c = None; st = {}; body = ""; ra = None
start = time.monotonic()
for i in range(n):
    if rate > 0:
        d = start + i / rate - time.monotonic()
        if d > 0: time.sleep(d)
    try:
        if c is None: c = http.client.HTTPConnection(host, port, timeout=10)
        c.request(method, path, body=b"" if method == "POST" else None, headers=hdrs)
        r = c.getresponse(); b = r.read().decode()
        if r.getheader("retry-after") is not None: ra = r.getheader("retry-after")
        st[str(r.status)] = st.get(str(r.status), 0) + 1; body = b
        if (r.getheader("connection") or "").lower() == "close": c.close(); c = None
    except Exception as e:
        st["error"] = st.get("error", 0) + 1; body = repr(e); c = None
print(json.dumps({"statuses": st, "body": body.strip(), "retry_after": ra, "elapsed": time.monotonic() - start}))
`;

/** Accepted (200) requests per second over the load's own duration, to two decimals. */
function acceptedRate(r: { readonly statuses: Readonly<Record<string, number>>; readonly elapsed: number }): number {
  return Math.round(((r.statuses['200'] ?? 0) / Math.max(r.elapsed, 1)) * 100) / 100;
}

/** One opaque TCP exchange: sends a line, prints the answer, or "closed" / "reset". */
const TCP = `
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(b"ping\\n")
    data = s.recv(100)
    print(data.decode().strip() or "closed")
except ConnectionResetError:
    print("reset")
except Exception as e:
    print("error " + repr(e))
`;

/** Sends METHOD PATH every 20 ms until one is answered 403 (or 20 s pass); prints the wall-clock time
 *  (ms) the first 403 request was sent and how many were allowed before it. */
const POLL = `
import http.client, json, sys, time
host, port, method, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
marker = sys.argv[5] if len(sys.argv) > 5 else None
c = http.client.HTTPConnection(host, port, timeout=10)
ok = 0; end = time.time() + 20
while time.time() < end:
    t = time.time()
    c.request(method, path, body=b"")
    r = c.getresponse(); r.read()
    if r.status == 403:
        print(json.dumps({"denied_at_ms": t * 1000, "allowed_before": ok})); sys.exit(0)
    ok += 1
    if ok == 1 and marker:
        open(marker, "w").close()
    time.sleep(0.02)
print(json.dumps({"denied_at_ms": None, "allowed_before": ok}))
`;

interface Options {
  /** The AuthorizationPolicy that lets ops POST /admin. */
  readonly adminAuthorized: boolean;
  /** The address NetworkAuthentication excepts from the pod network. */
  readonly exceptIp?: string;
  /** The rate limit: per identity with an override, or a total. */
  readonly rate: 'identity' | 'total';
}

function manifest(dir: string, podCidr: string, o: Options): string {
  const meshedClient = (name: string, sa: string) => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  serviceAccountName: ${sa}
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
  const unmeshed = (name: string) => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, annotations: {outrigger.io/inject: disabled}}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
  const openWeb = (name: string, annotations: string) => `
apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: open, labels: {app: ${name}}${annotations}}
spec:
  containers:
    - name: web
      command: [python3, -u, ${join(dir, 'web.py')}]
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: open}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 8080}]
`;
  const rate =
    o.rate === 'identity'
      ? `  identity: {requestsPerSecond: 20}
  overrides:
    - requestsPerSecond: 40
      clientRefs: [{kind: ServiceAccount, name: ops}]`
      : `  total: {requestsPerSecond: 50}`;
  return `
apiVersion: v1
kind: Namespace
metadata: {name: open, annotations: {config.outrigger.io/default-inbound-policy: all-unauthenticated}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ops}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
    - name: web
      command: [python3, -u, ${join(dir, 'web.py')}]
      ports:
        - {name: http-routes, containerPort: 8080}
        - {containerPort: 8081}
        - {containerPort: 8082}
        - {containerPort: 8083}
        - {containerPort: 9000}
        - {containerPort: 9001}
      readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
    - {name: routes, port: 8080}
    - {name: rate, port: 8081}
    - {name: net, port: 8082}
    - {name: plain, port: 8083}
    - {name: echo, port: 9000}
    - {name: echo-opaque, port: 9001}
---
${openWeb('open-web', '')}
---
${openWeb('open-deny', ', annotations: {config.outrigger.io/default-inbound-policy: deny}')}
---
${meshedClient('client', 'default')}
---
${meshedClient('ops', 'ops')}
---
${unmeshed('outsider')}
---
${unmeshed('outsider2')}
---
# Routes: GET /public for everyone, POST /admin for service account ops only.
apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web-routes}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http-routes
  proxyProtocol: HTTP/1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public}
spec:
  parentRefs: [{group: policy.outrigger.io, kind: Server, name: web-routes}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /public}, method: GET}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin}
spec:
  parentRefs: [{group: policy.outrigger.io, kind: Server, name: web-routes}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /admin}, method: POST}]
---
apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: public-all}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: public}
---
${
  o.adminAuthorized
    ? `apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: admin-ops}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: ops}]
---`
    : ''
}
# An opaque Server: meshed clients of namespace default only (a wildcard identity).
apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web-echo}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  port: 9001
  proxyProtocol: opaque
---
apiVersion: policy.outrigger.io/v1beta1
kind: MeshTLSAuthentication
metadata: {name: default-ns}
spec:
  identities: ["spiffe://cluster.local/ns/default/sa/*"]
---
apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: echo-default-ns}
spec:
  targetRef: {kind: Server, name: web-echo}
  requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: default-ns}]
---
# Rate limits: every client may call, at the rate the limit says.
apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web-rate}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8081
---
apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: rate-all}
spec:
  targetRef: {kind: Server, name: web-rate}
---
apiVersion: policy.outrigger.io/v1beta1
kind: HTTPLocalRateLimitPolicy
metadata: {name: web-rate}
spec:
  targetRef: {kind: Server, name: web-rate}
${rate}
---
# Networks: the pod network, except one address.
apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web-net}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 8082
---
apiVersion: policy.outrigger.io/v1beta1
kind: NetworkAuthentication
metadata: {name: pods}
spec:
  networks: [{cidr: ${podCidr}, except: [${o.exceptIp !== undefined ? `${o.exceptIp}/32` : ''}]}]
---
apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: net-pods}
spec:
  targetRef: {kind: Server, name: web-net}
  requiredAuthenticationRefs: [{kind: NetworkAuthentication, name: pods}]
`;
}

interface LoadResult {
  readonly statuses: Record<string, number>;
  readonly body: string;
  readonly retry_after: string | null;
  readonly elapsed: number;
}

void test("authorization policy and rate limiting in the server pods' proxies", { timeout: 300_000 }, async (t) => {
  const mesh = await meshTest(t, 'runtime-policy', {
    what: 'the end-to-end policy test',
    files: { 'web.py': WEB, 'load.py': LOAD, 'tcp.py': TCP, 'poll.py': POLL },
  });
  if (mesh === undefined) return;
  const { work } = mesh;
  const { podCidr } = mesh.net;
  let opts: Options = { adminAuthorized: true, rate: 'identity' };
  await mesh.up(manifest(work, podCidr, opts), ['--default-inbound-policy', 'all-authenticated'], 180_000);

  const apply = async (o: Options) => {
    opts = o;
    await mesh.apply(manifest(work, podCidr, o));
  };
  const load = async (
    pod: string,
    host: string,
    port: number,
    method: string,
    path: string,
    rate = 0,
    seconds = 0,
    ...headers: string[]
  ): Promise<LoadResult> => {
    const argv = ['python3', join(work, 'load.py'), host, String(port), method, path, String(rate), String(seconds)];
    argv.push(...headers);
    return JSON.parse(await mesh.run(pod, argv, { timeoutMs: 120_000 })) as LoadResult;
  };
  const one = async (
    pod: string,
    host: string,
    port: number,
    method: string,
    path: string,
    ...headers: string[]
  ): Promise<{ status: string; body: string }> => {
    const r = await load(pod, host, port, method, path, 0, 0, ...headers);
    return { status: Object.keys(r.statuses)[0] ?? '', body: r.body };
  };
  const tcp = async (pod: string, host: string, port: number): Promise<string> => {
    return (await mesh.run(pod, ['python3', join(work, 'tcp.py'), host, String(port)])).trim();
  };
  const metrics = (pod: string, ns = 'default'): Promise<string> => mesh.metrics(pod, ns);

  await t.test(
    'all-authenticated (mesh default): meshed client allowed; unmeshed refused over HTTP/1, HTTP/2 and TCP',
    async () => {
      const ok = await one('client', 'web', 8083, 'GET', '/x');
      assert.equal(ok.status, '200', ok.body);
      assert.match(ok.body, /^8083 GET \/x id=spiffe:\/\/cluster\.local\/ns\/default\/sa\/default$/);
      const denied = await one('outsider', 'web', 8083, 'GET', '/x');
      assert.equal(denied.status, '403', denied.body);
      assert.match(denied.body, /not authorized/);
      // HTTP/2 and gRPC from an unmeshed client: 403, and gRPC status 7 (PERMISSION_DENIED).
      const h2 = await mesh.exec('outsider', [
        'curl',
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--http2-prior-knowledge',
        'http://web:8083/x',
      ]);
      assert.equal(h2.stdout, '403', show(h2));
      const grpc = await mesh.exec('outsider', [
        'curl',
        '-s',
        '-D',
        '-',
        '-o',
        '/dev/null',
        '--http2-prior-knowledge',
        '-H',
        'content-type: application/grpc',
        '-d',
        '',
        'http://web:8083/pkg.Svc/Call',
      ]);
      assert.match(grpc.stdout, /grpc-status: 7/, show(grpc));
      assert.equal(await tcp('client', 'web', 9000), 'pong');
      assert.match(await tcp('outsider', 'web', 9000), /^(reset|closed)$/);
      const m = await metrics('web');
      assert.match(
        m,
        /inbound_http_authz_deny_total\{srv="default:all-authenticated",route="",rule="unauthorized"\} [1-9]/,
      );
      assert.match(m, /inbound_tcp_authz_deny_total\{srv="default:all-authenticated",rule="unauthorized"\} [1-9]/);
      assert.match(
        m,
        /inbound_tcp_authz_allow_total\{srv="default:all-authenticated",rule="default:all-authenticated"\} [1-9]/,
      );
    },
  );

  await t.test(
    'an opaque Server: a wildcard MeshTLSAuthentication lets meshed clients of the namespace in, others are closed',
    async () => {
      assert.equal(await tcp('client', 'web', 9001), 'pong');
      assert.equal(await tcp('ops', 'web', 9001), 'pong');
      assert.match(await tcp('outsider', 'web', 9001), /^(reset|closed)$/);
      const m = await metrics('web');
      assert.match(m, /inbound_tcp_authz_allow_total\{srv="default\/web-echo",rule="default\/echo-default-ns"\} 2/);
      assert.match(m, /inbound_tcp_authz_deny_total\{srv="default\/web-echo",rule="unauthorized"\} 1/);
    },
  );

  await t.test('route-level rules: GET /public for all, POST /admin for service account ops only', async () => {
    assert.equal((await one('outsider', 'web', 8080, 'GET', '/public/a')).status, '200');
    assert.equal((await one('client', 'web', 8080, 'GET', '/public/a')).status, '200');
    assert.equal((await one('ops', 'web', 8080, 'POST', '/admin/a')).status, '200');
    assert.equal((await one('client', 'web', 8080, 'POST', '/admin/a')).status, '403');
    assert.equal((await one('outsider', 'web', 8080, 'POST', '/admin/a')).status, '403');
    // GET /admin matches no route (the admin route is POST only): 404.
    assert.equal((await one('ops', 'web', 8080, 'GET', '/admin/a')).status, '404');
    const m = await metrics('web');
    assert.match(
      m,
      /inbound_http_authz_allow_total\{srv="default\/web-routes",route="default\/admin",rule="default\/admin-ops"\} 1/,
    );
    assert.match(
      m,
      /inbound_http_authz_deny_total\{srv="default\/web-routes",route="default\/admin",rule="unauthorized"\} 2/,
    );
  });

  await t.test('defaults: namespace over mesh, pod over namespace', async () => {
    // Namespace open says all-unauthenticated: an unmeshed client gets through (the mesh says all-authenticated).
    assert.equal((await one('outsider', 'open-web.open', 8080, 'GET', '/')).status, '200');
    // Pod open-deny says deny: even a meshed client is refused (its namespace says all-unauthenticated).
    assert.equal((await one('client', 'open-deny.open', 8080, 'GET', '/')).status, '403');
    // And the mesh default where neither says anything (the web pod's uncovered port).
    assert.equal((await one('outsider', 'web', 8083, 'GET', '/')).status, '403');
  });

  await t.test('a spoofed outrigger-client-id header grants nothing and never reaches the app', async () => {
    const spoof = 'outrigger-client-id:spiffe://cluster.local/ns/default/sa/ops';
    assert.equal((await one('outsider', 'web', 8080, 'POST', '/admin/a', spoof)).status, '403');
    const pub = await one('outsider', 'web', 8080, 'GET', '/public/b', spoof);
    assert.equal(pub.status, '200');
    assert.equal(pub.body, '8080 GET /public/b id=', 'the app must not see the header an unmeshed client sent');
    // A meshed client's own claim is replaced by the identity mesh TLS proved.
    assert.equal(
      (await one('client', 'web', 8080, 'GET', '/public/c', spoof)).body,
      '8080 GET /public/c id=spiffe://cluster.local/ns/default/sa/default',
    );
  });

  await t.test('an invalid policy is refused with the field named; the previous one stays', async () => {
    const bad = await mesh.write('bad.yaml', manifest(work, podCidr, opts).replace('cidr: 10.', 'cidr: 300.'));
    const r = await mesh.cli(['apply', '-f', bad]);
    assert.notEqual(r.code, 0, show(r));
    assert.match(
      r.stderr,
      /NetworkAuthentication default\/pods\): spec\.networks\[0\]\.cidr: must be an IPv4 CIDR/,
      show(r),
    );
    assert.equal((await one('ops', 'web', 8080, 'POST', '/admin/a')).status, '200');
  });

  await t.test('outrigger authz: the effective policy per port and route, and --check', async () => {
    const r = await mesh.cli(['authz', 'web']);
    assert.equal(r.code, 0, show(r));
    console.log(r.stdout.replace(/^/gm, '# '));
    assert.match(
      r.stdout,
      /8080 +default\/web-routes +HTTP\/1 +default\/admin +default\/admin-ops: mesh identity spiffe:\/\/cluster\.local\/ns\/default\/sa\/ops/,
    );
    assert.match(r.stdout, /8080 +default\/web-routes +HTTP\/1 +default\/public +default\/public-all: any client/);
    assert.match(r.stdout, /8081 .*default\/web-rate: per client 20\/s, default\/ops 40\/s/);
    assert.match(r.stdout, /other +default:all-authenticated .*any mesh identity/);
    const allowed = await mesh.cli([
      'authz',
      'web',
      '--check',
      '--from',
      'ops',
      '--method',
      'POST',
      '--path',
      '/admin/x',
      '--port',
      '8080',
    ]);
    assert.match(
      allowed.stdout,
      /port 8080: allowed by default\/admin-ops \(server default\/web-routes, route default\/admin\)/,
      show(allowed),
    );
    const denied = await mesh.cli(['authz', 'web', '--check', '--from', 'outsider', '--path', '/x']);
    assert.match(
      denied.stdout,
      /port 8080: denied by server default\/web-routes: no inbound route matches GET \/x/,
      show(denied),
    );
    const other = `other ports: denied by server default:all-authenticated: no authorization allows`;
    const outsider = `${literal(prefixOf(podCidr))}\\.[0-9.]+ \\(no mesh identity\\)`;
    assert.match(denied.stdout, new RegExp(`${other} ${outsider}`), show(denied));
  });

  await t.test(
    'live change: an authorization removed denies new requests within 1 s; one in flight finishes',
    async () => {
      // A slow request (3 s in the app) starts under the old rule, and a poller sends a request every 20 ms.
      const inflight = load('ops', 'web', 8080, 'POST', '/admin/slow');
      // The poller says when its first request was allowed (a file it creates): the rule changes only after
      // that, however long `outrigger exec` takes to start it on a loaded machine.
      const marks = join(work, 'marks');
      await mkdir(marks, { recursive: true, mode: 0o777 });
      await chmod(marks, 0o777);
      const marker = join(marks, 'poll-allowed');
      const poll = mesh.exec('ops', ['python3', join(work, 'poll.py'), 'web', '8080', 'POST', '/admin/p', marker]);
      const waitStart = Date.now();
      while (!existsSync(marker)) {
        assert.ok(Date.now() - waitStart < 30_000, 'the poller had no request allowed within 30 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await apply({ ...opts, adminAuthorized: false });
      const applied = Date.now();
      const p = await poll;
      assert.equal(p.code, 0, show(p));
      const { denied_at_ms: deniedAt, allowed_before: before } = JSON.parse(p.stdout) as {
        denied_at_ms: number | null;
        allowed_before: number;
      };
      assert.ok(deniedAt !== null && before > 0, p.stdout);
      console.log(
        `# first denied request: ${Math.round(deniedAt - started)} ms after apply started, ${Math.round(deniedAt - applied)} ms after it returned (${before} allowed before)`,
      );
      assert.ok(deniedAt - applied < 1000, `denied ${deniedAt - applied} ms after apply returned`);
      assert.equal((await one('ops', 'web', 8080, 'POST', '/admin/b')).status, '403');
      // ...and finishes under it: a request is authorized when it starts (docs/policy.md).
      const slow = await inflight;
      assert.deepEqual(slow.statuses, { '200': 1 }, slow.body);
      await apply({ ...opts, adminAuthorized: true });
    },
  );

  await t.test('rate limit per identity, with an override, at 2x for 10 s: within 5%', async () => {
    // identity 20 rps; ops has its own 40 rps. Each client sends twice its limit, at the same time.
    const [plain, ops] = await Promise.all([
      load('client', 'web', 8081, 'GET', '/r', 40, 10),
      load('ops', 'web', 8081, 'GET', '/r', 80, 10),
    ]);
    // Over the time the load really took: on a busy machine a single-connection client falls behind its
    // schedule and runs longer than 10 s, and the bucket refills for that long.
    const rate = (r: LoadResult) => acceptedRate(r);
    console.log(
      `# identity limit 20/s: accepted ${rate(plain)}/s ${JSON.stringify(plain.statuses)} in ${plain.elapsed.toFixed(2)} s; override 40/s: accepted ${rate(ops)}/s ${JSON.stringify(ops.statuses)} in ${ops.elapsed.toFixed(2)} s`,
    );
    assert.ok(Math.abs(rate(plain) - 20) <= 1, `identity: ${rate(plain)}/s`);
    assert.ok(Math.abs(rate(ops) - 40) <= 2, `override: ${rate(ops)}/s`);
    assert.ok(plain.retry_after !== null && Number(plain.retry_after) >= 1, 'a 429 carries Retry-After');
    assert.match(
      await metrics('web'),
      /inbound_http_ratelimit_limited_total\{srv="default\/web-rate",ratelimit="default\/web-rate",limit="override"\} [1-9]/,
    );
  });

  await t.test('rate limit total, changed live, at 2x for 10 s: within 5%', async () => {
    await apply({ ...opts, rate: 'total' });
    await new Promise((r) => setTimeout(r, 1000));
    const r = await load('client', 'web', 8081, 'GET', '/r', 100, 10);
    const accepted = acceptedRate(r);
    console.log(
      `# total limit 50/s: accepted ${accepted}/s ${JSON.stringify(r.statuses)} in ${r.elapsed.toFixed(2)} s`,
    );
    assert.ok(Math.abs(accepted - 50) <= 2.5, `total: ${accepted}/s`);
  });

  await t.test('network authentication: the pod network, except one address', async () => {
    const pods = await mesh.cli(['get', 'pods', '-o', 'json']);
    const items = (JSON.parse(pods.stdout) as { items: { name: string; ip: string }[] }).items;
    const outsiderIp = items.find((p) => p.name === 'outsider')?.ip;
    assert.ok(outsiderIp, pods.stdout);
    assert.equal((await one('outsider', 'web', 8082, 'GET', '/n')).status, '200', 'before the exception');
    await apply({ ...opts, exceptIp: outsiderIp });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await one('outsider', 'web', 8082, 'GET', '/n')).status, '403', 'the excepted address');
    assert.equal((await one('outsider2', 'web', 8082, 'GET', '/n')).status, '200', 'an unmeshed pod in the network');
    assert.equal((await one('client', 'web', 8082, 'GET', '/n')).status, '200', 'a meshed pod in the network');
  });
});
