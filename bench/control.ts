// The driver's handle on the control-plane child (bench/control-plane.ts): start it (with the identity
// service for the mtls scenario), change its store, read its CPU; and the store content the scenarios
// hand it (one Service whose virtual IP is an unused loopback address, endpoints on loopback ports;
// unmeshed pods for balance and propagation, a meshed one for mtls).
import { fileURLToPath } from 'node:url';
import type { StoreContent } from '../src/control/store/local/local.js';
import type { PodEntry, ServiceEntry } from '../src/control/store/store.js';
import { MESH_NAMESPACE } from './identity.js';
import { BenchError, spawnManaged, stopManaged, waitUntil, type Managed } from './tools.js';

const SCRIPT = fileURLToPath(new URL('./control-plane.js', import.meta.url));

/** Nothing listens there: the proxy only asks the control plane about it (a Service's clusterIP). */
export const VIP = '127.0.0.77';
export const VIP_PORT = 8080;
const NAMESPACE = MESH_NAMESPACE;
const SERVICE = 'replicas';

export interface BenchEndpoint {
  /** Pod name (namespace `bench`). */
  readonly pod: string;
  readonly ip: string;
  readonly port: number;
  /** A meshed pod's proxy is reached over mesh TLS (default false). */
  readonly meshed?: boolean;
  /** The pod's ServiceAccount: its identity when meshed (default `default`). */
  readonly serviceAccount?: string;
}

/** One Service `bench/<name>` (default `replicas`) at VIP:VIP_PORT (appProtocol http) over `endpoints`,
 *  all ready. */
export function serviceContent(endpoints: readonly BenchEndpoint[], name = SERVICE): StoreContent {
  const service: ServiceEntry = {
    namespace: NAMESPACE,
    name,
    clusterIP: VIP,
    ports: [{ name: 'http', port: VIP_PORT, appProtocol: 'http' }],
    endpoints: endpoints.map((e) => ({
      pod: `${NAMESPACE}/${e.pod}`,
      ip: e.ip,
      ports: { [VIP_PORT]: e.port },
      ready: true,
    })),
  };
  const pods: PodEntry[] = endpoints.map((e) => ({
    namespace: NAMESPACE,
    name: e.pod,
    ip: e.ip,
    ready: true,
    meshed: e.meshed ?? false,
    serviceAccount: e.serviceAccount ?? 'default',
    opaquePorts: [],
    labels: { app: name },
  }));
  return { services: [service], pods };
}

/** A reply of the child to one command. */
export interface ControlReply {
  id: number;
  /** process.hrtime.bigint() in the child just before store.replace (CLOCK_MONOTONIC, machine-wide). */
  tNs: bigint;
  /** The child's CPU time so far (user + system), microseconds. */
  cpuUs: number;
  /** Destination streams open. */
  watchers: number;
}

export function parseControlReply(line: string): ControlReply {
  const o = JSON.parse(line) as { id?: unknown; t_ns?: unknown; cpu_us?: unknown; watchers?: unknown };
  if (
    typeof o.id !== 'number' ||
    typeof o.t_ns !== 'string' ||
    typeof o.cpu_us !== 'number' ||
    typeof o.watchers !== 'number'
  ) {
    throw new BenchError(`control plane: unexpected reply ${line}`);
  }
  return { id: o.id, tNs: BigInt(o.t_ns), cpuUs: o.cpu_us, watchers: o.watchers };
}

export interface ControlPlaneChild {
  readonly proc: Managed;
  /** Its gRPC port on 127.0.0.1 (TLS only). */
  readonly port: number;
  /** What a proxy needs to reach it: the trust anchor (PEM) and the identity it serves with. */
  readonly trustAnchorPem: string;
  readonly identity: string;
  /** The proxy flags that say so (--trust-anchors, --control-identity). */
  readonly tlsArgs: readonly string[];
  /** Replaces the store's content; resolves with the child's reply. */
  replace(content: StoreContent): Promise<ControlReply>;
  /** The child's figures now, without changing anything. */
  stats(): Promise<ControlReply>;
  stop(): Promise<void>;
}

/** `identityDir`: also run the identity service, and write the tokens and haproxy certificates there
 *  (bench/control-plane.ts says which files) before the port is announced. `nodeArgs` go to node
 *  itself, before the script. */
export async function startControlPlaneChild(
  opts: { identityDir?: string; nodeArgs?: readonly string[] } = {},
): Promise<ControlPlaneChild> {
  const args = [
    ...(opts.nodeArgs ?? []),
    ...(opts.identityDir !== undefined ? [SCRIPT, '--identity', opts.identityDir] : [SCRIPT]),
  ];
  const proc = spawnManaged('control plane', process.execPath, args);
  let buffered = '';
  let port: number | undefined;
  let hello: { trustAnchorPem: string; identity: string } | undefined;
  const waiting = new Map<number, { resolve: (r: ControlReply) => void; reject: (e: Error) => void }>();
  proc.child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (port === undefined) {
        const first = JSON.parse(line) as { port: number; trustAnchorPem: string; identity: string };
        hello = { trustAnchorPem: first.trustAnchorPem, identity: first.identity };
        port = first.port;
        continue;
      }
      const reply = parseControlReply(line);
      waiting.get(reply.id)?.resolve(reply);
      waiting.delete(reply.id);
    }
  });
  void proc.exited.then((how) => {
    for (const w of waiting.values()) w.reject(new BenchError(`control plane exited (${how}):\n${proc.tail()}`));
    waiting.clear();
  });
  try {
    await waitUntil('control plane', () => Promise.resolve(port !== undefined), 10_000, proc);
  } catch (err) {
    await stopManaged(proc);
    throw err;
  }
  let nextId = 1;
  const send = (replace: StoreContent | undefined): Promise<ControlReply> =>
    new Promise((resolve, reject) => {
      if (proc.hasExited()) return reject(new BenchError(`control plane exited:\n${proc.tail()}`));
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      proc.child.stdin?.write(JSON.stringify(replace === undefined ? { id } : { id, replace }) + '\n');
    });
  if (port === undefined || hello === undefined) throw new Error('unreachable: control plane port');
  // A PEM begins with dashes: the `=` form, or the option parser takes it for an option.
  const tlsArgs = [`--trust-anchors=${hello.trustAnchorPem}`, '--control-identity', hello.identity];
  return {
    proc,
    port,
    ...hello,
    tlsArgs,
    replace: (c) => send(c),
    stats: () => send(undefined),
    stop: () => stopManaged(proc),
  };
}
