// The per-host data plane's proxy: one process per (simulated) node, in the host's network namespace,
// serving every meshed pod of its node. Each pod gets its own proxy instance in this process (its own
// listeners, certificate and private key, policy watch, discovery, metrics and admin view), built by
// startProxy from the flags its sidecar would have had, on listening sockets the runtime opened inside
// the pod's network namespace and handed over. The runtime adds and removes pods at run time over the
// process's IPC channel (node-protocol.ts); when that channel goes (the runtime is gone), the node proxy
// drains every pod and exits, as a sidecar does when its pod stops.
//
// What the process holds is the point of the comparison with sidecars: the private keys of every pod
// identity on the node, side by side in one address space (`GET /dataplane` lists them).
import http from 'node:http';
import type net from 'node:net';
import { Gauge, Registry } from 'prom-client';
import type { Logger } from '../../core/log.js';
import { proxyConfigFromArgs } from '../args.js';
import { startProxy, type RunningProxy } from '../main.js';
import { registerProcessMetrics } from '../metrics.js';
import type { NodeToRuntime, RuntimeToNode, ListenerRole } from './protocol.js';

export interface NodeProxyOptions {
  /** The simulated node's name, e.g. node-1. */
  readonly node: string;
  /** The node-level admin server (host side; loopback: no pod can reach it). Port 0: any. */
  readonly adminAddr: string;
  readonly adminPort: number;
  readonly log: Logger;
  /** Where messages to the runtime go (process.send). */
  readonly send: (m: NodeToRuntime) => void;
}

interface PodEntry {
  readonly pod: string;
  readonly proxy: RunningProxy;
}

/** What `GET /dataplane` answers, and the runtime shows as `outrigger get dataplane`. */
export interface NodeProxyView {
  readonly node: string;
  readonly pid: number;
  readonly pods: readonly { readonly pod: string; readonly identity?: string; readonly ready: boolean }[];
  /** The identities whose private keys this process holds now. */
  readonly identities: readonly string[];
}

export class NodeProxy {
  private readonly pods = new Map<string, PodEntry>();
  /** Listeners received for pods not added yet (one IPC message carries one handle). */
  private readonly pending = new Map<string, Partial<Record<ListenerRole, net.Server>>>();
  /** Adds and removes of one pod run one after the other. */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly registry = new Registry();
  private readonly admin: http.Server;
  private stopping: Promise<void> | undefined;

  constructor(private readonly o: NodeProxyOptions) {
    registerProcessMetrics(this.registry);
    const labelNames = ['node'] as const;
    const podCount = () => this.pods.size;
    const keyCount = () => this.view().identities.length;
    new Gauge({
      name: 'dataplane_pods',
      help: 'pods this node proxy serves',
      labelNames,
      registers: [this.registry],
      collect() {
        this.set({ node: o.node }, podCount());
      },
    });
    new Gauge({
      name: 'dataplane_identities',
      help: 'pod identities whose private keys this node proxy holds',
      labelNames,
      registers: [this.registry],
      collect() {
        this.set({ node: o.node }, keyCount());
      },
    });
    this.admin = http.createServer((req, res) => void this.serveAdmin(req, res));
  }

  async start(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.admin.once('error', reject);
      this.admin.listen(this.o.adminPort, this.o.adminAddr, () => resolve());
    });
    const a = this.admin.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  view(): NodeProxyView {
    const pods = [...this.pods.values()].map((e) => ({
      pod: e.pod,
      ...(e.proxy.identity !== undefined ? { identity: e.proxy.identity.id } : {}),
      ready: e.proxy.ready(),
    }));
    const identities = new Set<string>();
    for (const e of this.pods.values()) if (e.proxy.identity?.holdsKey() === true) identities.add(e.proxy.identity.id);
    return { node: this.o.node, pid: process.pid, pods, identities: [...identities].sort() };
  }

  /** One message from the runtime (with the listening socket it carries, for `listener`). */
  handle(m: RuntimeToNode, handle: unknown): void {
    if (this.stopping !== undefined) return;
    switch (m.type) {
      case 'listener': {
        const got = this.pending.get(m.pod) ?? {};
        got[m.role] = handle as net.Server;
        this.pending.set(m.pod, got);
        return;
      }
      case 'add':
        this.queue(m.pod, () => this.add(m.pod, m.args));
        return;
      case 'remove':
        this.queue(m.pod, () => this.remove(m.pod));
        return;
    }
  }

  private queue(pod: string, step: () => Promise<void>): void {
    const next = (this.queues.get(pod) ?? Promise.resolve()).then(step, step);
    this.queues.set(pod, next);
    void next.finally(() => {
      if (this.queues.get(pod) === next) this.queues.delete(pod);
    });
  }

  private async add(pod: string, args: readonly string[]): Promise<void> {
    const got = this.pending.get(pod);
    this.pending.delete(pod);
    const fail = (why: string) => {
      for (const s of Object.values(got ?? {})) s.close();
      this.o.log.warn({ pod, err: why }, 'pod not added');
      this.o.send({ type: 'added', pod, error: why });
    };
    if (this.pods.has(pod)) return fail(`pod ${pod} is served already`);
    if (got?.outbound === undefined || got.inbound === undefined || got.admin === undefined) {
      return fail(`pod ${pod}: its outbound, inbound and admin listeners must come before it is added`);
    }
    let proxy: RunningProxy;
    try {
      const cfg = proxyConfigFromArgs(args);
      proxy = await startProxy(cfg, this.o.log.child({ pod }), {
        outbound: got.outbound,
        inbound: got.inbound,
        admin: got.admin,
      });
    } catch (err) {
      return fail((err as Error).message);
    }
    this.pods.set(pod, { pod, proxy });
    this.o.log.info({ pod, identity: proxy.identity?.id }, 'pod added');
    this.o.send({ type: 'added', pod });
  }

  /** Drains the pod's connections and forgets it: its key and certificate go with its proxy instance. */
  private async remove(pod: string): Promise<void> {
    const e = this.pods.get(pod);
    for (const s of Object.values(this.pending.get(pod) ?? {})) s.close();
    this.pending.delete(pod);
    if (e !== undefined) {
      await e.proxy.shutdown();
      this.pods.delete(pod);
      this.o.log.info({ pod }, 'pod removed');
    }
    this.o.send({ type: 'removed', pod });
  }

  private async serveAdmin(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/live':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('live\n');
        return;
      case '/ready': {
        const ok = this.stopping === undefined;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'stopping\n');
        return;
      }
      case '/dataplane':
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(this.view())}\n`);
        return;
      case '/metrics': {
        // The node's own figures; each pod's proxy metrics are on its admin view in the pod (as a
        // sidecar's), labelled by the scrape with that pod.
        const text = await this.registry.metrics();
        res.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }

  /** Drains every pod, then closes the admin server. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const got of this.pending.values()) for (const s of Object.values(got)) s.close();
      this.pending.clear();
      await Promise.allSettled([...this.pods.values()].map((e) => e.proxy.shutdown()));
      this.pods.clear();
      await new Promise<void>((r) => {
        this.admin.close(() => r());
        this.admin.closeAllConnections();
      });
    })();
    return this.stopping;
  }
}
