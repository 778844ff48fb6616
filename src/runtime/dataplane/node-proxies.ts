// The per-host data plane of the local runtime: one node proxy per simulated node (`outrigger
// proxy-node`, src/proxy/node), in the host's network namespace, as the proxy uid, in the node's cgroup
// (outrigger/<bridge>-<node>, where a kubelet puts a node agent, not in any pod's). It serves every meshed
// pod placed on its node. Interception stays in each pod: the pod's proxy-init rules redirect to ports
// in the pod's own namespace as for a sidecar, and the node proxy listens there on sockets this runtime
// opens inside the pod's namespace and hands over.
//
// Why the root runtime opens the listening sockets (native listenInNetns: setns on its own thread,
// socket, bind, listen, setns back) rather than the node proxy: which pods a node proxy serves is the
// runtime's decision, like the CNI's that hands ztunnel a pod, not something the proxy picks by naming
// a namespace; and rather than a helper process started in each pod: that costs a Node start per pod
// where setns is two system calls. (The node proxy does enter a pod's namespace for one thing, the
// socket of each connection to the pod's app, which cannot be made in advance: see below.) The fd
// crosses to the node proxy over its IPC channel as a net.Server handle (SCM_RIGHTS underneath), the
// same channel that adds and removes pods: a pipe only this process holds, so nothing else can reach
// the control of the node proxy (no socket file to protect).
//
// The node proxy reaches a pod's app from inside the pod, as a sidecar does: it makes that connection's
// socket in the pod's namespace (native socketInNetns), so it never crosses the bridge in clear and, as
// the proxy's uid, is let through by the pod's rules. For that one thing it keeps CAP_SYS_ADMIN (setns),
// which a sidecar never has: a per-host proxy is more privileged as well as holding more keys. Its mesh
// connections (to other pods' inbound ports, on this node or another) leave from the host's side of the
// bridge and are redirected in the server pod like any other: two pods on one node still talk through
// mTLS, node proxy to itself (no short-cut: the same policy, metrics and identity checks as between
// nodes, at the price of a handshake and a trip through the bridge).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { PROXY_ADMIN_PORT } from '../../manifests/contract.js';
import { listenInNetns } from '../../proxy/transport/origdst.js';
import type { ListenerRole, NodeToRuntime, RuntimeToNode } from '../../proxy/node/protocol.js';
import { DEFAULT_PROXY_INIT } from '../net/index.js';
import { Cgroup, type CgroupRoots, type PodDataPlane, type ProxyCommand } from '../supervisor/index.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';
import { nodeNames, placePod } from './placement.js';

export interface NodeProxiesOptions {
  readonly nodes: number;
  /** The mesh's bridge: it names the nodes' cgroups, so that two meshes' nodes never share one. */
  readonly bridge: string;
  readonly stateDir: string;
  /** How to run `outrigger proxy` as the proxy uid; the node proxy is its `proxy-node` sibling. */
  readonly command: () => ProxyCommand;
  readonly cgroups: CgroupRoots | undefined;
  readonly say: (line: string) => void;
  /** How long a pod's view may take to answer /ready once added (ms, default 30 s). */
  readonly readyTimeoutMs?: number;
}

/** A pod as its node proxy serves it. */
export interface NodePod {
  /** `namespace/name`. */
  readonly key: string;
  readonly netns: string;
  readonly ip: string;
  /** The pod's proxy flags (its sidecar's, plus the node's source address and the pod's own). */
  readonly args: readonly string[];
}

/** One node proxy as `get dataplane` shows it (what the process itself says is added by the CLI). */
export interface NodeProxyStatus {
  readonly node: string;
  readonly pid?: number;
  /** host:port of its node-level admin server (loopback). */
  readonly admin?: string;
  readonly restarts: number;
  readonly cgroups: readonly string[];
  /** `namespace/name` of the pods placed on it (served once attached). */
  readonly pods: readonly string[];
}

interface NodeState {
  readonly name: string;
  proc: ChildProcess | undefined;
  admin: string | undefined;
  starting: Promise<ChildProcess> | undefined;
  restarts: number;
  readonly cgroup: Cgroup | undefined;
  /** Attached pods (re-added after a restart). */
  readonly pods: Map<string, NodePod>;
  /** Placed pods, attached or not. */
  readonly placed: Set<string>;
  /** Replies awaited from the node proxy, by `type pod`. */
  readonly waiting: Map<string, (m: NodeToRuntime) => void>;
}

const LISTENERS: readonly { readonly role: ListenerRole; readonly addr: string; readonly port: number }[] = [
  { role: 'outbound', addr: '127.0.0.1', port: DEFAULT_PROXY_INIT.outboundPort },
  { role: 'inbound', addr: '0.0.0.0', port: DEFAULT_PROXY_INIT.inboundPort },
  { role: 'admin', addr: '0.0.0.0', port: PROXY_ADMIN_PORT },
];

export class NodeProxies {
  private readonly nodes = new Map<string, NodeState>();
  private stopping = false;

  constructor(private readonly o: NodeProxiesOptions) {
    for (const name of nodeNames(o.nodes)) {
      this.nodes.set(name, {
        name,
        proc: undefined,
        admin: undefined,
        starting: undefined,
        restarts: 0,
        cgroup: o.cgroups !== undefined ? new Cgroup(o.cgroups, nodeCgroupRel(o.bridge, name)) : undefined,
        pods: new Map(),
        placed: new Set(),
        waiting: new Map(),
      });
    }
  }

  /** Places a new pod on a node (see placePod): the node's name. */
  place(pod: { readonly namespace: string; readonly name: string; readonly nodeName?: string | undefined }): string {
    const load = new Map([...this.nodes.values()].map((n) => [n.name, n.placed.size]));
    const name = placePod(pod, this.o.nodes, load);
    this.node(name).placed.add(`${pod.namespace}/${pod.name}`);
    return name;
  }

  /** Places a pod where an earlier runtime had placed it (a resume). */
  placeAt(node: string, key: string): void {
    this.node(node).placed.add(key);
  }

  /**
   * The node proxies an earlier control process left serving (a resume): the processes in the nodes'
   * cgroups now, before this runtime starts any. They serve the pods until `retire`.
   */
  async leftBehind(): Promise<number[]> {
    const pids: number[] = [];
    for (const n of this.nodes.values()) {
      const dir = n.cgroup?.dirs()[0];
      if (dir === undefined) continue;
      const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const l of text.split('\n')) if (l.trim() !== '') pids.push(Number(l));
    }
    return pids;
  }

  /** Ends node proxies left behind, now that this runtime's serve their pods: SIGTERM (they stop
   *  accepting, finish what is in flight and exit), SIGKILL after `graceMs`. */
  async retire(pids: readonly number[], graceMs = 10_000): Promise<void> {
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    }
    const deadline = Date.now() + graceMs;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
    if (pids.length > 0)
      this.o.say(`data plane: the node proxies left behind (pid ${pids.join(', ')}) handed over and ended`);
  }

  /** Forgets a pod's placement (its pod is gone). */
  unplace(node: string, key: string): void {
    this.nodes.get(node)?.placed.delete(key);
  }

  /** How the pod's processes join and leave the node proxy. */
  forPod(node: string, pod: NodePod): PodDataPlane {
    return { attach: () => this.attach(node, pod), detach: () => this.detach(node, pod.key) };
  }

  status(): NodeProxyStatus[] {
    return [...this.nodes.values()].map((n) => ({
      node: n.name,
      ...(n.proc?.pid !== undefined && n.proc.exitCode === null ? { pid: n.proc.pid } : {}),
      ...(n.admin !== undefined ? { admin: n.admin } : {}),
      restarts: n.restarts,
      cgroups: n.cgroup?.dirs() ?? [],
      pods: [...n.placed].sort(),
    }));
  }

  private node(name: string): NodeState {
    const n = this.nodes.get(name);
    if (n === undefined) throw new RuntimeError(RuntimeCodes.DATA_PLANE, `no node ${name}`);
    return n;
  }

  private async attach(node: string, pod: NodePod): Promise<void> {
    const n = this.node(node);
    const proc = await this.ensure(n);
    n.pods.set(pod.key, pod);
    await this.add(n, proc, pod);
    await this.waitReady(pod);
  }

  /** Opens the pod's three listeners in its namespace, hands them over, then adds the pod. */
  private async add(n: NodeState, proc: ChildProcess, pod: NodePod): Promise<void> {
    for (const l of LISTENERS) {
      let fd: number;
      try {
        // Owned by the proxy uid: the next node proxy's listener may bind beside it (a resume's hand-over),
        // a process of the pod (root included) may not.
        fd = listenInNetns(`/run/netns/${pod.netns}`, l.addr, l.port, 511, DEFAULT_PROXY_INIT.proxyUid);
      } catch (err) {
        const why = `pod ${pod.key}: cannot open its ${l.role} listener ${l.addr}:${l.port} in its network namespace: ${(err as Error).message}`;
        throw new RuntimeError(RuntimeCodes.DATA_PLANE, why);
      }
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      });
      const msg: RuntimeToNode = { type: 'listener', pod: pod.key, role: l.role };
      try {
        await new Promise<void>((resolve, reject) => proc.send(msg, server, (err) => (err ? reject(err) : resolve())));
      } finally {
        // The node proxy has its own copy of the socket now (or none, if it is gone): ours goes.
        server.close();
      }
    }
    const reply = this.reply(n, 'added', pod.key);
    proc.send({ type: 'add', pod: pod.key, args: pod.args } satisfies RuntimeToNode);
    const m = await reply;
    if (m.type === 'added' && m.error !== undefined) {
      throw new RuntimeError(RuntimeCodes.DATA_PLANE, `node proxy ${n.name} refused pod ${pod.key}: ${m.error}`);
    }
  }

  /** The pod's admin view (the node proxy's, in the pod's namespace) answers /ready: certificate held,
   *  first policy answer in, as a sidecar's readiness probe checks. */
  private async waitReady(pod: NodePod): Promise<void> {
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 30_000);
    let last = '';
    while (Date.now() < deadline && !this.stopping) {
      const r = await httpGet(pod.ip, PROXY_ADMIN_PORT, '/ready').catch((e: unknown) => ({
        status: 0,
        body: (e as Error).message,
      }));
      if (r.status === 200) return;
      last = r.status === 0 ? r.body : `${r.status} ${r.body.trim()}`;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new RuntimeError(
      RuntimeCodes.DATA_PLANE,
      `pod ${pod.key}: its node proxy's view was not ready within ${(this.o.readyTimeoutMs ?? 30_000) / 1000} s (${last})`,
    );
  }

  private async detach(node: string, key: string): Promise<void> {
    const n = this.node(node);
    n.pods.delete(key);
    const proc = n.proc;
    if (proc === undefined || proc.exitCode !== null || !proc.connected) return;
    const reply = this.reply(n, 'removed', key);
    proc.send({ type: 'remove', pod: key } satisfies RuntimeToNode);
    await reply;
  }

  /** A reply of the node proxy; rejects if it exits first. */
  private reply(n: NodeState, type: 'added' | 'removed', pod: string): Promise<NodeToRuntime> {
    return new Promise((resolve, reject) => {
      const k = `${type} ${pod}`;
      n.waiting.set(k, (m) => {
        n.waiting.delete(k);
        if (m.type === 'ready') reject(new RuntimeError(RuntimeCodes.DATA_PLANE, `node proxy ${n.name} exited`));
        else resolve(m);
      });
    });
  }

  /** The node's proxy, started if it is not running. */
  private ensure(n: NodeState): Promise<ChildProcess> {
    if (n.proc !== undefined && n.proc.exitCode === null && n.proc.signalCode === null) return Promise.resolve(n.proc);
    n.starting ??= this.spawn(n).finally(() => (n.starting = undefined));
    return n.starting;
  }

  private async spawn(n: NodeState): Promise<ChildProcess> {
    if (this.stopping) throw new RuntimeError(RuntimeCodes.STOPPED, 'stopped while starting');
    const command = this.o.command();
    const dir = join(this.o.stateDir, 'dataplane');
    await mkdir(dir, { recursive: true });
    const log = await open(join(dir, `${n.name}.log`), 'a');
    const uid = DEFAULT_PROXY_INIT.proxyUid;
    // The proxy's uid (which the pods' rules exempt) with one capability kept through the uid change
    // (ambient): CAP_SYS_ADMIN, to make sockets in its pods' namespaces. No other, and no new privileges.
    const argv = [
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      '--inh-caps=-all,+sys_admin',
      '--ambient-caps=-all,+sys_admin',
      '--bounding-set=-all,+sys_admin',
      '--no-new-privs',
      '--',
      ...command.argv.slice(0, -1),
      'proxy-node',
      '--node',
      n.name,
      '--admin-addr',
      '127.0.0.1',
    ];
    await n.cgroup?.create({});
    let proc: ChildProcess;
    try {
      proc = spawn(argv[0] as string, argv.slice(1), {
        stdio: ['ignore', log.fd, log.fd, 'ipc'],
        env: { ...command.env, PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/' },
        cwd: '/',
        // Its own process group, so a Ctrl-C at `up` reaches it only through the runtime's stop.
        detached: true,
      });
    } finally {
      await log.close();
    }
    const pid = proc.pid;
    if (pid === undefined) {
      await once(proc, 'error').catch(() => undefined);
      throw new RuntimeError(RuntimeCodes.DATA_PLANE, `node proxy ${n.name} could not be started`);
    }
    // Into the node's cgroup at once: setpriv and Node take milliseconds to exec before any work.
    await n.cgroup?.add(pid).catch((err: unknown) => this.o.say(`node ${n.name}: cgroup: ${(err as Error).message}`));
    proc.on('message', (m: NodeToRuntime) => {
      if (m.type === 'ready') return;
      n.waiting.get(`${m.type} ${m.pod}`)?.(m);
    });
    const ready = new Promise<void>((resolve, reject) => {
      const onMsg = (m: NodeToRuntime) => {
        if (m.type !== 'ready') return;
        proc.off('message', onMsg);
        n.admin = m.admin;
        resolve();
      };
      proc.on('message', onMsg);
      proc.once('exit', (code, signal) =>
        reject(
          new RuntimeError(
            RuntimeCodes.DATA_PLANE,
            `node proxy ${n.name} exited (${signal ?? `code ${code}`}) before it was ready; see ${join(dir, `${n.name}.log`)}`,
          ),
        ),
      );
    });
    proc.once('exit', (code, signal) => this.exited(n, proc, code, signal));
    await ready;
    n.proc = proc;
    this.o.say(`node ${n.name}: node proxy pid ${pid}, admin ${n.admin ?? '?'}`);
    return proc;
  }

  /** Like a DaemonSet's pod: a node proxy that dies is started again, and every pod it served is
   *  added again (new listeners: the old ones died with it). Until then its pods' traffic fails. */
  private exited(n: NodeState, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    for (const w of [...n.waiting.values()]) w({ type: 'ready', node: n.name, pid: 0, admin: '' });
    if (n.proc !== proc) return;
    n.proc = undefined;
    n.admin = undefined;
    if (this.stopping) return;
    n.restarts++;
    this.o.say(`node ${n.name}: node proxy exited (${signal ?? `code ${code}`}); starting it again`);
    setTimeout(() => {
      if (this.stopping) return;
      void (async () => {
        const next = await this.ensure(n);
        for (const pod of n.pods.values()) await this.add(n, next, pod);
      })().catch((err: unknown) => this.o.say(`node ${n.name}: restart: ${(err as Error).message}`));
    }, 1000).unref();
  }

  /** Stops every node proxy (SIGTERM: they drain; SIGKILL after `graceMs`), then removes the node
   *  cgroups. Called once every pod has been stopped. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.nodes.values()].map(async (n) => {
        await n.starting?.catch(() => undefined);
        const proc = n.proc;
        if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
          const gone = once(proc, 'exit');
          proc.kill('SIGTERM');
          const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
          await gone;
          clearTimeout(timer);
        }
        await n.cgroup?.remove().catch((err: unknown) => this.o.say(`node ${n.name}: ${(err as Error).message}`));
      }),
    );
  }
}

/** A node's cgroup below the pods' parent: `outrigger/<bridge>-<node>` (another mesh on the machine
 *  has other nodes of the same names). */
export function nodeCgroupRel(bridge: string, node: string): string {
  return `outrigger/${bridge}-${node}`;
}

/** After a crash of the control process (`down` from the records): the node proxies of the mesh on
 *  `bridge` are killed (they are the processes in its nodes' cgroups) and the cgroups removed. The node
 *  proxies end by themselves when their control process goes, after draining; this does not wait. */
export async function removeNodeCgroups(roots: CgroupRoots, bridge: string): Promise<string[]> {
  const killed: string[] = [];
  const base = new Cgroup(roots, 'outrigger').dir();
  const names = (await readdir(base).catch(() => [] as string[])).filter((n) => n.startsWith(`${bridge}-node-`));
  for (const name of names) {
    const cg = new Cgroup(roots, `outrigger/${name}`);
    for (let i = 0; i < 50; i++) {
      const pids = (await readFile(join(cg.dir(), 'cgroup.procs'), 'utf8').catch(() => ''))
        .split('\n')
        .filter((l) => l !== '')
        .map(Number);
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.push(`${name}: pid ${pid}`);
        } catch {
          // gone already
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await cg.remove();
  }
  return killed;
}

function httpGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c.slice(0, 1000)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}
