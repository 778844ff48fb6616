// The lab's fixed workload: which pods run on which simulated node, what each pod's app is (a small
// HTTP/1.1 keep-alive server) and the load generator that runs inside a pod's network namespace (so its
// traffic is intercepted and crosses the data plane as an app's would), both small Python programs
// written into the lab's work directory. The generator reports every latency (sorted) and the time of
// every failed request, which the lab reads back from a JSON file.
import { ANNOTATION } from '../manifests/annotations.js';

/** The unmeshed pod every pod calls in the blast-radius, upgrade and noisy-neighbour phases: only the
 *  caller's data plane is on that path, so a failure there is the caller's own data plane's. */
export const SINK = 'lab-sink';

/** A pod of the workload: `node` is the simulated node it is placed on (spec.nodeName). */
export interface LabPod {
  readonly name: string;
  readonly node: string;
  /** Its place on its node (0-based) and the node's number (1-based). */
  readonly index: number;
  readonly nodeNumber: number;
}

/** `podsPerNode` pods on each of `nodes` nodes, named lab-n<node>-<i>. */
export function labPods(nodes: number, podsPerNode: number): LabPod[] {
  const out: LabPod[] = [];
  for (let n = 1; n <= nodes; n++) {
    for (let i = 0; i < podsPerNode; i++)
      out.push({ name: `lab-n${n}-${i}`, node: `node-${n}`, index: i, nodeNumber: n });
  }
  return out;
}

/** Whom a pod calls in the overhead phase: the pod at the same place on the next node (so with two
 *  nodes or more every call crosses nodes, node proxy to node proxy in per-host mode), or with one node
 *  the next pod on it. */
export function ringTarget(pods: readonly LabPod[], pod: LabPod, nodes: number): LabPod {
  const perNode = pods.length / nodes;
  if (nodes > 1) {
    const next = (pod.nodeNumber % nodes) + 1;
    return pods.find((p) => p.nodeNumber === next && p.index === pod.index) as LabPod;
  }
  return pods[(pod.index + 1) % perNode] as LabPod;
}

/** The manifests of one mesh of the lab: the pods (meshed, or not for the baseline) and the sink. */
export function labManifest(pods: readonly LabPod[], programs: string, meshed: boolean): string {
  const pod = (name: string, node: string | undefined, inject: boolean) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  labels: {app: ${name}}
  annotations: {${ANNOTATION.inject}: ${inject ? 'enabled' : 'disabled'}}
spec:
  serviceAccountName: ${name}
${node !== undefined ? `  nodeName: ${node}\n` : ''}  containers:
    - name: app
      command: [python3, ${programs}/server.py]
      readinessProbe:
        httpGet: {path: /, port: 8080}
        periodSeconds: 1
`;
  const sa = (name: string) => `apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${name}
`;
  return [
    ...pods.flatMap((p) => [sa(p.name), pod(p.name, p.node, meshed)]),
    sa(SINK),
    pod(SINK, undefined, false),
  ].join('---\n');
}

/** The pods' app: HTTP/1.1 keep-alive on :8080, a 2-byte answer (the proxy's work dominates, not the
 *  app's). */
export const SERVER_PY = `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "3")
        self.end_headers()
        self.wfile.write(b"ok\\n")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
`;

/**
 * The load generator: python3 load.py HOST RATE SECONDS OUT [STOPFILE] [CONNS].
 * RATE > 0: open loop at RATE requests/s on one keep-alive connection; each latency is taken from the
 * request's scheduled start, so a stall counts against every request it delayed (no coordinated
 * omission). RATE 0: a flood, CONNS connections each sending the next request as soon as the last one
 * is answered. It runs SECONDS (after a warm-up second that is not recorded), or until STOPFILE exists
 * when one is given. A request fails on any error, a status other than 200, or no answer within 2 s;
 * the connection is then made again. Writes {"lat": sorted ms, "ok", "fail", "fail_t": epoch ms of each
 * failure, "sent": every request sent, the warm-up's too, "t0", "t1"} to OUT, and makes OUT.measuring once
 * its first recorded request (the first after the warm-up) is over.
 */
export const LOAD_PY = `
import http.client, json, os, sys, threading, time
host, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
stop = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
conns = int(sys.argv[6]) if len(sys.argv) > 6 else 1
lat = []; fails = []; ok = [0]; sent = [0]; lock = threading.Lock(); measuring = [False]
start = time.monotonic() + 1.0
end = start + seconds
def done():
    now = time.monotonic()
    if stop is not None:
        return os.path.exists(stop) or now > start + 600
    return now >= end
def mark():
    if not measuring[0]:
        measuring[0] = True
        open(out + ".measuring", "w").close()
def one(c, t_sched):
    with lock:
        sent[0] += 1
    try:
        if c is None:
            c = http.client.HTTPConnection(host, 8080, timeout=2)
        c.request("GET", "/")
        r = c.getresponse(); r.read()
        if r.status != 200:
            raise Exception("status %d" % r.status)
        if t_sched >= start:
            with lock:
                ok[0] += 1; lat.append((time.monotonic() - t_sched) * 1000.0)
            mark()
        return c, True
    except Exception:
        if t_sched >= start:
            with lock:
                fails.append(time.time() * 1000.0)
            mark()
        try:
            c is not None and c.close()
        except Exception:
            pass
        return None, False
def paced():
    c = None; i = 0; t0 = time.monotonic()
    while not done():
        t = t0 + i / rate; i += 1
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        c, good = one(c, t)
def flood():
    c = None
    while not done():
        c, good = one(c, time.monotonic())
        if not good:
            time.sleep(0.01)
threads = [threading.Thread(target=paced if rate > 0 else flood) for _ in range(1 if rate > 0 else conns)]
for t in threads: t.start()
for t in threads: t.join()
lat.sort()
with open(out + ".tmp", "w") as f:
    json.dump({"lat": [round(x, 3) for x in lat], "ok": ok[0], "fail": len(fails), "fail_t": fails[:100000], "sent": sent[0], "t0": start, "t1": time.monotonic()}, f)
os.rename(out + ".tmp", out)
`;
