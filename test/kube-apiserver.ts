// An API server stand-in for tests: the list and watch protocol of the Kubernetes API over plain HTTP,
// as @kubernetes/client-node's informers speak it. One resourceVersion counter for every object (as
// etcd's revision), lists answer with it, `?watch=true&resourceVersion=N` streams every event after N
// as chunked JSON lines, then new ones as they happen, with BOOKMARK events in between; `compact()`
// forgets history so a watch from an older version gets 410 Gone (an ERROR event with a Status) and the
// client must list again. Also: TokenReview, /version, and injected failures.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';

export type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; [k: string]: unknown };
  [k: string]: unknown;
};

interface Event {
  readonly rv: number;
  readonly path: string;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}

/** Collection path of a kind (every namespace), e.g. Pod → /api/v1/pods. */
export function collectionPath(o: Pick<Obj, 'apiVersion' | 'kind'>): string {
  const plural = o.kind.toLowerCase() + (o.kind.endsWith('s') ? 'es' : o.kind.endsWith('y') ? '' : 's');
  const fixed = o.kind.endsWith('y') ? plural.slice(0, -1) + 'ies' : plural;
  return o.apiVersion.includes('/') ? `/apis/${o.apiVersion}/${fixed}` : `/api/${o.apiVersion}/${fixed}`;
}

const key = (o: Obj) => `${collectionPath(o)}|${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export interface Request {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
}

export class FakeApiServer {
  readonly server: Server;
  private rv = 100;
  private readonly objects = new Map<string, Obj>();
  private events: Event[] = [];
  /** Events at or below this were forgotten: a watch from there gets 410 Gone. */
  private compactedAt = 100;
  private readonly watches = new Set<{ path: string; res: ServerResponse; from: number }>();
  private readonly failures: { path: string; status: number; watch: boolean }[] = [];
  private bookmarkTimer?: NodeJS.Timeout;
  /** Every create and replace a client made, in order. */
  readonly writes: { method: string; object: Obj }[] = [];
  /** Every request, for assertions on the protocol (lists, watches with resourceVersion). */
  readonly requests: Request[] = [];
  /** Paths answered 404 (a CRD that is not installed). */
  readonly absent = new Set<string>();
  /** While set, open watches are sent nothing (a network partition); events still happen. */
  partitioned = false;
  tokenReview: (body: { spec?: { token?: string; audiences?: string[] } }) => unknown = () => ({
    status: { authenticated: false, error: 'no reviewer' },
  });
  version = { major: '1', minor: '31', gitVersion: 'v1.31.2' };
  /** SelfSubjectAccessReview: whether the caller may do this. */
  allow: (attributes: {
    verb?: string;
    group?: string;
    resource?: string;
    namespace?: string;
    user?: string;
  }) => boolean = () => true;
  /** The API server's service proxy (/api/v1/namespaces/NS/services/NAME/proxy/PATH). */
  serviceProxy: (namespace: string, service: string, path: string) => { status: number; body: string } = () => ({
    status: 503,
    body: 'no endpoints available for service',
  });

  /** The API server's pod proxy (/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH). */
  podProxy: (namespace: string, pod: string, path: string) => { status: number; body: string } = () => ({
    status: 503,
    body: 'error trying to reach service',
  });

  constructor(readonly opts: { bookmarkMs?: number } = {}) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    if (this.opts.bookmarkMs !== undefined)
      this.bookmarkTimer = setInterval(() => this.bookmarks(), this.opts.bookmarkMs);
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** The object stored under this kind, name and namespace. */
  get(apiVersion: string, kind: string, name: string, namespace?: string): Obj | undefined {
    return this.objects.get(
      key({ apiVersion, kind, metadata: { name, ...(namespace !== undefined ? { namespace } : {}) } }),
    );
  }

  /** Creates or replaces an object (ADDED or MODIFIED). */
  put(o: Obj): Obj {
    const k = key(o);
    const had = this.objects.has(k);
    const prev = this.objects.get(k);
    const stored: Obj = structuredClone(o);
    stored.metadata = {
      ...stored.metadata,
      uid: stored.metadata.uid ?? prev?.metadata.uid ?? `uid-${stored.metadata.name}-${this.rv}`,
      resourceVersion: String(++this.rv),
    };
    this.objects.set(k, stored);
    this.emit({ rv: this.rv, path: collectionPath(o), type: had ? 'MODIFIED' : 'ADDED', object: stored });
    return stored;
  }

  delete(o: Pick<Obj, 'apiVersion' | 'kind' | 'metadata'>): void {
    const k = key(o as Obj);
    const prev = this.objects.get(k);
    if (prev === undefined) return;
    this.objects.delete(k);
    const gone = { ...prev, metadata: { ...prev.metadata, resourceVersion: String(++this.rv) } };
    this.emit({ rv: this.rv, path: collectionPath(o as Obj), type: 'DELETED', object: gone });
  }

  /** Makes the server hold exactly `objects` (events for each difference). */
  replaceAll(objects: readonly Obj[]): void {
    const want = new Map(objects.map((o) => [key(o), o]));
    for (const [k, o] of [...this.objects]) if (!want.has(k)) this.delete(o);
    for (const [k, o] of want) {
      const prev = this.objects.get(k);
      const strip = (x: Obj | undefined) =>
        x === undefined
          ? undefined
          : JSON.stringify({ ...x, metadata: { ...x.metadata, resourceVersion: undefined, uid: undefined } });
      if (strip(prev) !== strip({ ...o, metadata: { ...o.metadata, uid: undefined } })) this.put(o);
    }
  }

  /** Forgets the event history: watches from before now get 410 Gone. With `kick`, open watches are
   *  told so at once (an ERROR event, then the stream ends), as when etcd compacts under them. */
  compact(kick = true): void {
    this.compactedAt = this.rv;
    this.events = [];
    if (!kick) return;
    for (const w of [...this.watches]) {
      this.writeEvent(w.res, { type: 'ERROR', object: gone(w.from) });
      w.res.end();
      this.watches.delete(w);
    }
  }

  /** Ends every open watch stream (as the API server does at its timeout). */
  closeWatches(): void {
    for (const w of [...this.watches]) w.res.end();
    this.watches.clear();
  }

  /** The next request for `path` fails with `status` (a list, or with `watch` a watch). */
  failNext(path: string, status: number, watch = false): void {
    this.failures.push({ path, status, watch });
  }

  openWatches(path?: string): number {
    return [...this.watches].filter((w) => path === undefined || w.path === path).length;
  }

  async close(): Promise<void> {
    clearInterval(this.bookmarkTimer);
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private bookmarks(): void {
    for (const w of this.watches) {
      const kind = w.path.split('/').pop() ?? '';
      this.writeEvent(w.res, {
        type: 'BOOKMARK',
        object: { kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } },
      });
    }
  }

  private emit(e: Event): void {
    this.events.push(e);
    if (this.partitioned) return;
    for (const w of this.watches)
      if (w.path === e.path && e.rv > w.from) this.writeEvent(w.res, { type: e.type, object: e.object });
  }

  private writeEvent(res: ServerResponse, e: unknown): void {
    // One JSON object per line, each its own chunk (Transfer-Encoding: chunked), as the API server does.
    res.write(JSON.stringify(e) + '\n');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const watch = url.searchParams.get('watch') === 'true';
    this.requests.push({ method: req.method ?? 'GET', path, query: url.searchParams });
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (path === '/version') return json(200, this.version);
    if (req.method === 'POST' && path === '/apis/authentication.k8s.io/v1/tokenreviews') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        spec?: { token?: string; audiences?: string[] };
      };
      return json(201, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        metadata: {},
        spec: body.spec,
        ...(this.tokenReview(body) as object),
      });
    }
    const sar = /^\/apis\/authorization\.k8s\.io\/v1\/(self)?subjectaccessreviews$/.exec(path);
    if (req.method === 'POST' && sar !== null) {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        spec?: { user?: string; resourceAttributes?: Record<string, string> };
      };
      const kind = sar[1] !== undefined ? 'SelfSubjectAccessReview' : 'SubjectAccessReview';
      return json(201, {
        apiVersion: 'authorization.k8s.io/v1',
        kind,
        metadata: {},
        spec: body.spec,
        status: {
          allowed: this.allow({
            ...(body.spec?.resourceAttributes ?? {}),
            ...(body.spec?.user !== undefined ? { user: body.spec.user } : {}),
          }),
        },
      });
    }
    const proxy = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy\/(.*)$/.exec(path);
    if (proxy !== null) {
      const r = this.serviceProxy(proxy[1] as string, decodeURIComponent(proxy[2] as string), proxy[3] as string);
      res.writeHead(r.status, { 'content-type': 'text/plain' });
      res.end(r.body);
      return;
    }
    const podProxy = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/proxy\/(.*)$/.exec(path);
    if (podProxy !== null) {
      const r = this.podProxy(podProxy[1] as string, decodeURIComponent(podProxy[2] as string), podProxy[3] as string);
      res.writeHead(r.status, { 'content-type': 'text/plain' });
      res.end(r.body);
      return;
    }
    const fail = this.failures.findIndex((f) => f.path === path && f.watch === watch);
    if (fail !== -1) {
      const f = this.failures.splice(fail, 1)[0] as { status: number };
      return json(f.status, status(f.status, 'injected failure'));
    }
    if (this.absent.has(path)) return json(404, status(404, 'the server could not find the requested resource'));
    const single = objectKey(path);
    // Create (POST to a collection) and replace (PUT to an object), as a client's writes need them.
    if (req.method === 'POST' || req.method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj;
      const k = key(body);
      if (req.method === 'POST' && objectKey(`${path}/${body.metadata.name}`) !== k)
        return json(400, status(400, `the object does not belong in ${path}`));
      if (req.method === 'PUT' && single !== k) return json(400, status(400, `the object is not ${path}`));
      const prev = this.objects.get(k);
      if (req.method === 'POST' && prev !== undefined)
        return json(409, status(409, `${body.kind} "${body.metadata.name}" already exists`));
      if (req.method === 'PUT' && prev === undefined)
        return json(404, status(404, `${body.kind} "${body.metadata.name}" not found`));
      const rv = body.metadata.resourceVersion;
      if (req.method === 'PUT' && rv !== undefined && rv !== prev?.metadata.resourceVersion)
        return json(409, status(409, 'the object has been modified; please apply your changes to the latest version'));
      this.writes.push({ method: req.method, object: body });
      return json(req.method === 'POST' ? 201 : 200, this.put(body));
    }
    if (req.method !== 'GET') return json(405, status(405, 'method not allowed'));
    if (!watch && single !== undefined) {
      const o = this.objects.get(single);
      return o !== undefined
        ? json(200, o)
        : json(404, status(404, `${path.split('/').slice(-2).join(' "')}" not found`));
    }
    if (!watch) {
      const items = [...this.objects.values()].filter((o) => collectionPath(o) === path);
      return json(200, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.rv) }, items });
    }
    const from = Number(url.searchParams.get('resourceVersion') ?? String(this.rv));
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from < this.compactedAt) {
      this.writeEvent(res, { type: 'ERROR', object: gone(from) });
      res.end();
      return;
    }
    const w = { path, res, from };
    for (const e of this.events)
      if (e.path === path && e.rv > from) this.writeEvent(res, { type: e.type, object: e.object });
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
  }
}

/** The stored key of a path that names one object (`.../namespaces/NS/PLURAL/NAME` or a cluster-scoped
 *  `.../PLURAL/NAME`), or undefined for a collection. */
function objectKey(path: string): string | undefined {
  const parts = path.split('/').filter((p) => p !== '');
  const base = parts[0] === 'api' ? 2 : 3; // api/v1 | apis/group/version
  const rest = parts.slice(base);
  const prefix = '/' + parts.slice(0, base).join('/');
  if (rest.length === 4 && rest[0] === 'namespaces') return `${prefix}/${rest[2]}|${rest[1]}/${rest[3]}`;
  if (rest.length === 2) return `${prefix}/${rest[0]}|/${rest[1]}`;
  return undefined;
}

function status(code: number, message: string): unknown {
  return { apiVersion: 'v1', kind: 'Status', metadata: {}, status: 'Failure', message, code };
}

function gone(from: number): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Status',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: ${from}`,
    reason: 'Expired',
    code: 410,
  };
}

/** A kubeconfig that points at a stand-in. */
export function kubeConfigFor(server: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'test', token: 'test-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'test' }],
    currentContext: 'fake',
  });
  return kc;
}
