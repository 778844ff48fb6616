// The injector as a real HTTPS server receiving AdmissionReview requests as the API server sends them:
// what it patches (and what not), that the patched objects validate against the Kubernetes schemas, that
// re-injecting changes nothing, and that a failure admits the pod unchanged. Also `outrigger inject`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { parseAllDocuments } from 'yaml';
import { makeServingTls } from '../src/kube/certs.js';
import type { InjectConfig, Json } from '../src/kube/inject.js';
import { injectManifests } from '../src/kube/offline.js';
import { renderObjects } from '../src/kube/render.js';
import { startWebhook, type Webhook } from '../src/kube/webhook.js';
import { unknownContainerFields, validateK8s } from './kube-validate.js';

const CFG = {
  image: 'registry.example/outrigger:test',
  controlAddr: 'outrigger-control-plane.outrigger.svc:8086',
  trustDomain: 'cluster.local',
  controlIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
};
const NAMESPACES: Record<string, Record<string, string>> = {
  meshed: { 'outrigger.io/inject': 'enabled' },
  plain: {},
  opaque: {
    'outrigger.io/inject': 'enabled',
    'config.outrigger.io/opaque-ports': '5432',
    'config.outrigger.io/skip-outbound-ports': '25',
  },
};

/** RFC 6902 add/replace/remove, written here independently of the code under test. */
function applyPatch(doc: unknown, ops: { op: string; path: string; value?: unknown }[]): Json {
  const out = structuredClone(doc) as Json;
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() as string;
    let cur: any = out; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const p of parts) {
      assert.ok(cur[p] !== undefined, `${op.path}: the parent exists`);
      cur = cur[p];
    }
    if (Array.isArray(cur)) {
      if (op.op === 'add') cur.splice(last === '-' ? cur.length : Number(last), 0, op.value);
      else if (op.op === 'remove') cur.splice(Number(last), 1);
      else cur[Number(last)] = op.value;
    } else if (op.op === 'remove') delete cur[last];
    else cur[last] = op.value;
  }
  return out;
}

function pod(name: string, namespace: string, extra: { annotations?: Record<string, string>; spec?: Json } = {}): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${name}-`,
      namespace,
      labels: { app: name },
      ...(extra.annotations !== undefined ? { annotations: extra.annotations } : {}),
    },
    spec: {
      serviceAccountName: name,
      containers: [
        {
          name: 'app',
          image: 'example/app:1',
          ports: [{ containerPort: 8080, name: 'http', protocol: 'TCP' }],
          resources: {},
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      volumes: [
        {
          name: 'kube-api-access-abcde',
          projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }] },
        },
      ],
      ...(extra.spec ?? {}),
    },
  };
}

function admissionReview(object: Json, namespace: string, opts: { operation?: string; kind?: string } = {}): Json {
  const kind = opts.kind ?? 'Pod';
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${Math.random().toString(16).slice(2)}`,
      kind: { group: kind === 'Pod' ? '' : 'apps', version: 'v1', kind },
      resource: { group: kind === 'Pod' ? '' : 'apps', version: 'v1', resource: `${kind.toLowerCase()}s` },
      requestKind: { group: '', version: 'v1', kind },
      namespace,
      operation: opts.operation ?? 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        groups: ['system:serviceaccounts'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

interface Answer {
  status: number;
  body: {
    apiVersion?: string;
    kind?: string;
    response?: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[] };
    error?: string;
  };
}

function post(w: Webhook, ca: string, body: unknown, raw?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = raw ?? JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: w.port,
        path: '/inject?timeout=10s',
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

type Review = (
  object: Json,
  ns: string,
  opts?: { operation?: string; kind?: string },
) => Promise<{ answer: Answer; patched?: Json; ops?: { op: string; path: string; value?: unknown }[] }>;

async function withWebhook(fn: (review: Review, w: Webhook, ca: string) => Promise<void>): Promise<void> {
  return withWebhookConfig(CFG, fn);
}

async function withWebhookConfig(
  cfg: InjectConfig,
  fn: (review: Review, w: Webhook, ca: string) => Promise<void>,
): Promise<void> {
  const tls = await makeServingTls(['localhost'], { ips: ['127.0.0.1'] });
  const w = await startWebhook({
    inject: cfg,
    namespaceAnnotations: (ns) => NAMESPACES[ns],
    cert: tls.certPem,
    key: tls.keyPem,
    host: '127.0.0.1',
    port: 0,
  });
  try {
    await fn(
      async (object, ns, opts) => {
        const review = admissionReview(object, ns, opts);
        const answer = await post(w, tls.caPem, review);
        assert.equal(answer.status, 200);
        assert.equal(answer.body.kind, 'AdmissionReview');
        assert.equal(answer.body.response?.uid, (review.request as { uid: string }).uid);
        assert.equal(answer.body.response?.allowed, true, 'never refuses');
        if (answer.body.response?.patch === undefined) return { answer };
        assert.equal(answer.body.response.patchType, 'JSONPatch');
        const ops = JSON.parse(Buffer.from(answer.body.response.patch, 'base64').toString('utf8')) as {
          op: string;
          path: string;
          value?: unknown;
        }[];
        return { answer, ops, patched: applyPatch(object, ops) };
      },
      w,
      tls.caPem,
    );
  } finally {
    await w.close();
  }
}

/** What every injected pod spec holds, checked field by field. */
/* eslint-disable @typescript-eslint/no-explicit-any -- pod specs as the API server returns them */
function assertInjected(
  spec: any,
  original: any,
  expect: {
    skipIn?: string;
    skipOut?: string;
    opaque?: string;
    resources?: unknown;
    defaultPolicy?: string;
    workload?: string;
  } = {},
): void {
  /* eslint-enable @typescript-eslint/no-explicit-any */
  const init = spec.initContainers;
  assert.deepEqual(
    init.map((c: { name: string }) => c.name),
    ['outrigger-init', 'outrigger-proxy', ...(original.initContainers ?? []).map((c: { name: string }) => c.name)],
  );
  assert.deepEqual(spec.containers, original.containers, 'the app containers are untouched');
  assert.deepEqual(unknownContainerFields([...init, ...spec.containers]), []);
  const [pinit, proxy] = init;
  // proxy-init: root with NET_ADMIN and NET_RAW only, the shared rule-writing command.
  assert.deepEqual(pinit.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  assert.equal(pinit.securityContext.privileged, undefined);
  assert.equal(pinit.securityContext.allowPrivilegeEscalation, false);
  assert.equal(pinit.args[0], 'proxy-init');
  const flag = (name: string) => pinit.args[pinit.args.indexOf(name) + 1];
  assert.equal(flag('--proxy-uid'), '2102');
  assert.equal(flag('--skip-inbound-ports'), expect.skipIn ?? '');
  assert.equal(flag('--skip-outbound-ports'), expect.skipOut ?? '');
  assert.equal(pinit.restartPolicy, undefined, 'a plain init container: runs once, before the proxy');
  // The proxy: a native sidecar, uid 2102, not ready (so the app does not start) until /ready.
  assert.equal(proxy.restartPolicy, 'Always');
  assert.equal(proxy.securityContext.runAsUser, 2102);
  assert.equal(proxy.securityContext.runAsNonRoot, true);
  assert.equal(proxy.securityContext.readOnlyRootFilesystem, true);
  assert.deepEqual(proxy.securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(proxy.startupProbe.httpGet.path, '/ready');
  assert.equal(proxy.image, CFG.image);
  const env = Object.fromEntries(proxy.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
  assert.equal(env.OUTRIGGER_PROXY_DESTINATION_ADDR, CFG.controlAddr);
  assert.equal(env.OUTRIGGER_PROXY_IDENTITY_ADDR, CFG.controlAddr);
  assert.equal(env.OUTRIGGER_PROXY_IDENTITY_TOKEN_FILE, '/var/run/secrets/outrigger.io/identity/token');
  // The control plane serves only TLS: the proxy checks it against the mesh's anchor, for its identity.
  assert.equal(env.OUTRIGGER_PROXY_TRUST_ANCHORS, undefined, 'never inline: a rotation could not reach it');
  assert.equal(env.OUTRIGGER_PROXY_TRUST_ANCHORS_FILE, '/var/run/outrigger/trust/ca-bundle.crt');
  assert.equal(env.OUTRIGGER_PROXY_CONTROL_IDENTITY, CFG.controlIdentity);
  assert.equal(
    env.OUTRIGGER_PROXY_IDENTITY,
    'spiffe://cluster.local/ns/$(OUTRIGGER_PROXY_POD_NAMESPACE)/sa/$(OUTRIGGER_POD_SERVICE_ACCOUNT)',
  );
  // Policy and the pod's own identity for metrics and tap, as the local runtime gives its proxies.
  assert.equal(env.OUTRIGGER_PROXY_POLICY_ADDR, CFG.controlAddr);
  assert.equal(env.OUTRIGGER_PROXY_POD, '$(OUTRIGGER_PROXY_POD_NAMESPACE)/$(OUTRIGGER_PROXY_POD_NAME)');
  assert.equal(env.OUTRIGGER_PROXY_DEFAULT_INBOUND_POLICY, expect.defaultPolicy ?? 'all-unauthenticated');
  assert.equal(env.OUTRIGGER_PROXY_POD_WORKLOAD, expect.workload);
  const fields = Object.fromEntries(
    proxy.env
      .filter((e: { valueFrom?: unknown }) => e.valueFrom !== undefined)
      .map((e: { name: string; valueFrom: { fieldRef: { fieldPath: string } } }) => [
        e.name,
        e.valueFrom.fieldRef.fieldPath,
      ]),
  );
  assert.deepEqual(fields, {
    OUTRIGGER_PROXY_POD_NAMESPACE: 'metadata.namespace',
    OUTRIGGER_PROXY_POD_NAME: 'metadata.name',
    OUTRIGGER_POD_SERVICE_ACCOUNT: 'spec.serviceAccountName',
  });
  // $(VAR) expands only variables defined earlier in the list.
  const order = proxy.env.map((e: { name: string }) => e.name);
  for (const [user, used] of [
    ['OUTRIGGER_PROXY_POD', 'OUTRIGGER_PROXY_POD_NAME'],
    ['OUTRIGGER_PROXY_IDENTITY', 'OUTRIGGER_POD_SERVICE_ACCOUNT'],
  ])
    assert.ok(order.indexOf(used) < order.indexOf(user), `${used} before ${user}`);
  assert.equal(env.OUTRIGGER_PROXY_OPAQUE_PORTS, expect.opaque);
  if (expect.resources !== undefined) assert.deepEqual(proxy.resources, expect.resources);
  // The token: projected, audience-bound, mounted read-only where the proxy reads it.
  const vol = spec.volumes.find((v: { name: string }) => v.name === 'outrigger-identity-token');
  assert.deepEqual(vol.projected.sources, [
    { serviceAccountToken: { audience: 'identity.outrigger.io', expirationSeconds: 3600, path: 'token' } },
  ]);
  // The trust bundle: the ConfigMap the control plane copies into the pod's namespace, mounted (so the
  // kubelet updates the file in place when a rotation replaces it), read from its file.
  assert.deepEqual(
    spec.volumes.find((v: { name: string }) => v.name === 'outrigger-trust-anchors'),
    { name: 'outrigger-trust-anchors', configMap: { name: 'outrigger-trust-anchors' } },
  );
  assert.deepEqual(proxy.volumeMounts, [
    { name: 'outrigger-identity-token', mountPath: '/var/run/secrets/outrigger.io/identity', readOnly: true },
    { name: 'outrigger-trust-anchors', mountPath: '/var/run/outrigger/trust', readOnly: true },
  ]);
  for (const v of original.volumes ?? [])
    assert.ok(
      spec.volumes.some((x: { name: string }) => x.name === v.name),
      `keeps volume ${v.name}`,
    );
}

void test('webhook: a pod in an injected namespace gets the mesh; the patched pod validates; injecting it again changes nothing', async () => {
  await withWebhook(async (review) => {
    const p = pod('web', 'meshed');
    const { patched, ops } = await review(p, 'meshed');
    assert.ok(patched !== undefined && ops !== undefined);
    validateK8s({ ...patched, metadata: { ...(patched.metadata as Json), name: 'web-x1' } });
    assertInjected(patched.spec, p.spec);
    const annotations = (patched.metadata as { annotations: Record<string, string> }).annotations;
    assert.equal(annotations['outrigger.io/injected'], '0.1.0');
    assert.equal(annotations['kubectl.kubernetes.io/default-container'], 'app');
    // Only our fields are touched.
    assert.deepEqual(ops.map((o) => o.path).sort(), ['/metadata/annotations', '/spec/initContainers', '/spec/volumes']);
    const again = await review(patched, 'meshed');
    assert.equal(again.ops, undefined, 'idempotent: an injected pod gets no patch');
  });
});

void test('webhook: who is injected: pod or namespace enabled; never disabled, host-network, other operations', async () => {
  await withWebhook(async (review) => {
    assert.ok((await review(pod('a', 'plain', { annotations: { 'outrigger.io/inject': 'enabled' } }), 'plain')).ops);
    assert.equal((await review(pod('b', 'plain'), 'plain')).ops, undefined, 'opt-in: nothing says enabled');
    assert.equal(
      (await review(pod('c', 'meshed', { annotations: { 'outrigger.io/inject': 'disabled' } }), 'meshed')).ops,
      undefined,
    );
    assert.equal((await review(pod('d', 'meshed', { spec: { hostNetwork: true } }), 'meshed')).ops, undefined);
    assert.equal((await review(pod('e', 'meshed'), 'meshed', { operation: 'UPDATE' })).ops, undefined);
    assert.equal(
      (await review(pod('f', 'unknown-ns'), 'unknown-ns')).ops,
      undefined,
      'a namespace not known: as if not annotated',
    );
  });
});

void test('webhook: annotations set the ports, the proxy resources; user init containers run after the proxy', async () => {
  await withWebhook(async (review) => {
    const p = pod('db', 'opaque', {
      annotations: {
        'config.outrigger.io/skip-inbound-ports': '22,9000-9010',
        'config.outrigger.io/proxy-cpu-limit': '500m',
        'config.outrigger.io/proxy-memory-request': '100Mi',
        'config.outrigger.io/proxy-memory-limit': '256Mi',
      },
      spec: {
        initContainers: [{ name: 'migrate', image: 'example/migrate:1' }],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    });
    const { patched } = await review(p, 'opaque');
    assert.ok(patched);
    validateK8s({ ...patched, metadata: { ...(patched.metadata as Json), name: 'db-0' } });
    assertInjected(patched.spec, p.spec, {
      skipIn: '22,9000-9010',
      skipOut: '25',
      opaque: '5432',
      resources: { requests: { cpu: '20m', memory: '100Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    });
  });
});

void test("webhook: the default inbound policy is the pod's, else its namespace's, else the mesh's; a Deployment's pod names its Deployment", async () => {
  const annotation = 'config.outrigger.io/default-inbound-policy';
  NAMESPACES.locked = { 'outrigger.io/inject': 'enabled', [annotation]: 'all-authenticated' };
  try {
    await withWebhook(async (review) => {
      const own = await review(pod('a', 'locked', { annotations: { [annotation]: 'deny' } }), 'locked');
      assertInjected(own.patched?.spec, pod('a', 'locked').spec, { defaultPolicy: 'deny' });
      const inherits = await review(pod('b', 'locked'), 'locked');
      assertInjected(inherits.patched?.spec, pod('b', 'locked').spec, { defaultPolicy: 'all-authenticated' });
      const bad = await review(pod('c', 'meshed', { annotations: { [annotation]: 'nobody' } }), 'meshed');
      assert.equal(bad.ops, undefined);
      assert.match(bad.answer.body.response?.warnings?.[0] ?? '', /default-inbound-policy: must be one of/);
      // As the ReplicaSet controller creates a Deployment's pods: owner reference and template hash.
      const fromRs = pod('web', 'meshed');
      (fromRs.metadata as Json).labels = { app: 'web', 'pod-template-hash': '5d8f7c9b6' };
      (fromRs.metadata as Json).ownerReferences = [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'web-5d8f7c9b6',
          uid: 'u',
          controller: true,
          blockOwnerDeletion: true,
        },
      ];
      const r = await review(fromRs, 'meshed');
      assertInjected(r.patched?.spec, fromRs.spec, { workload: 'web' });
    });
    await withWebhookConfig({ ...CFG, defaultInboundPolicy: 'cluster-authenticated' }, async (review) => {
      const mesh = await review(pod('d', 'meshed'), 'meshed');
      assertInjected(mesh.patched?.spec, pod('d', 'meshed').spec, { defaultPolicy: 'cluster-authenticated' });
    });
  } finally {
    delete NAMESPACES.locked;
  }
});

void test("webhook: the app's httpGet and tcpSocket probes are pointed at the proxy's admin port, which forwards them (policy never meets the kubelet)", async () => {
  await withWebhook(async (review) => {
    const p = pod('api', 'meshed', { annotations: { 'config.outrigger.io/skip-inbound-ports': '9000' } });
    const app = (p.spec as { containers: Json[] }).containers[0] as Json;
    Object.assign(app, {
      readinessProbe: {
        httpGet: { path: '/ready', port: 'http', scheme: 'HTTP' },
        periodSeconds: 5,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 3,
      },
      livenessProbe: {
        tcpSocket: { port: 8080 },
        periodSeconds: 10,
        timeoutSeconds: 1,
        successThreshold: 1,
        failureThreshold: 3,
      },
      startupProbe: {
        httpGet: { path: '/started', port: 9000, scheme: 'HTTP' },
        periodSeconds: 1,
        failureThreshold: 30,
      },
    });
    const { patched, ops } = await review(p, 'meshed');
    assert.ok(patched && ops);
    validateK8s({ ...patched, metadata: { ...(patched.metadata as Json), name: 'api-x1' } });
    assert.deepEqual(ops.map((o) => o.path).sort(), [
      '/metadata/annotations',
      '/spec/containers',
      '/spec/initContainers',
      '/spec/volumes',
    ]);
    const c = (patched.spec as any).containers[0]; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(c.readinessProbe, {
      httpGet: { path: '/app-probe/app-readiness', port: 4191, scheme: 'HTTP' },
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/app-probe/app-liveness', port: 4191, scheme: 'HTTP' });
    assert.equal(c.livenessProbe.tcpSocket, undefined);
    assert.deepEqual(c.startupProbe, app.startupProbe, 'a port that skips the proxy is probed directly');
    const { startupProbe: _s, readinessProbe: _r, livenessProbe: _l, ...rest } = c;
    const { startupProbe: _s0, readinessProbe: _r0, livenessProbe: _l0, ...restBefore } = app;
    assert.deepEqual(rest, restBefore, 'nothing else of the app container changes');
    const proxy = (patched.spec as any).initContainers[1]; // eslint-disable-line @typescript-eslint/no-explicit-any
    const probes = JSON.parse(
      proxy.env.find((e: { name: string }) => e.name === 'OUTRIGGER_PROXY_APP_PROBES').value as string,
    ) as unknown;
    assert.deepEqual(probes, {
      'app-readiness': { port: 8080, scheme: 'HTTP', path: '/ready' },
      'app-liveness': { port: 8080, scheme: 'TCP' },
    });
    assert.equal((await review(patched, 'meshed')).ops, undefined, 'idempotent');
  });
});

void test('webhook: bad annotations or a broken request admit the pod unchanged, with a warning', async () => {
  await withWebhook(async (review, w, ca) => {
    const bad = await review(
      pod('x', 'meshed', {
        annotations: { 'config.outrigger.io/opaque-ports': '80-abc', 'config.outrigger.io/proxy-cpu-limit': 'lots' },
      }),
      'meshed',
    );
    assert.equal(bad.ops, undefined);
    assert.match(
      bad.answer.body.response?.warnings?.[0] ?? '',
      /not injected: bad annotations: .*opaque-ports.*proxy-cpu-limit/,
    );
    assert.equal((await post(w, ca, undefined, '{not json')).status, 400);
    assert.equal((await post(w, ca, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })).status, 400);
    assert.ok(w.counts.errors >= 2 && w.counts.skipped >= 1);
  });
});

void test('webhook: workload templates (Deployment, Job, CronJob) are patched in their pod template', async () => {
  await withWebhook(async (review) => {
    const template = { metadata: { labels: { app: 'web' } }, spec: pod('web', 'meshed').spec };
    const deploy = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'meshed' },
      spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template },
    };
    const d = await review(deploy, 'meshed', { kind: 'Deployment' });
    assert.ok(d.patched && d.ops);
    assert.ok(d.ops.every((o) => o.path.startsWith('/spec/template/')));
    validateK8s(d.patched);
    assertInjected((d.patched as any).spec.template.spec, template.spec, { workload: 'web' }); // eslint-disable-line @typescript-eslint/no-explicit-any
    const jobTemplate = { ...template, spec: { ...(template.spec as Json), restartPolicy: 'Never' } };
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'once', namespace: 'meshed' },
      spec: { template: jobTemplate },
    };
    const j = await review(job, 'meshed', { kind: 'Job' });
    assert.ok(j.patched);
    validateK8s(j.patched);
    // The proxy is a native sidecar: the Job completes when its app exits.
    assert.equal((j.patched as any).spec.template.spec.initContainers[1].restartPolicy, 'Always'); // eslint-disable-line @typescript-eslint/no-explicit-any
    const cron = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly', namespace: 'meshed' },
      spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: jobTemplate } } },
    };
    const c = await review(cron, 'meshed', { kind: 'CronJob' });
    assert.ok(c.patched);
    validateK8s(c.patched);
  });
});

void test('outrigger inject: every workload of a YAML stream, offline; other documents pass through; output validates', () => {
  const input = [
    renderObjects([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }], 'yaml'),
    renderObjects(
      [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'web', namespace: 'shop' },
          spec: {
            selector: { matchLabels: { app: 'web' } },
            template: { metadata: { labels: { app: 'web' } }, spec: pod('web', 'shop').spec },
          },
        },
      ],
      'yaml',
    ),
    renderObjects(
      [
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'shop' },
          spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
        },
      ],
      'yaml',
    ),
    renderObjects(
      [
        {
          ...pod('legacy', 'shop', { annotations: { 'outrigger.io/inject': 'disabled' } }),
          metadata: { name: 'legacy', namespace: 'shop', annotations: { 'outrigger.io/inject': 'disabled' } },
        },
      ],
      'yaml',
    ),
    renderObjects(
      [
        {
          apiVersion: 'apps/v1',
          kind: 'DaemonSet',
          metadata: { name: 'agent', namespace: 'shop' },
          spec: {
            selector: { matchLabels: { app: 'agent' } },
            template: {
              metadata: { labels: { app: 'agent' } },
              spec: { ...(pod('agent', 'shop').spec as Json), hostNetwork: true },
            },
          },
        },
      ],
      'yaml',
    ),
  ].join('');
  const { objects, report } = injectManifests(input, CFG);
  assert.deepEqual(report, [
    'deployment/web injected',
    'pod/legacy skipped: the pod says outrigger.io/inject: disabled',
    "daemonset/agent skipped: host-network pods are never injected (their iptables rules would be the node's)",
  ]);
  for (const o of objects) validateK8s(o);
  const deploy = objects[1] as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  assertInjected(deploy.spec.template.spec, pod('web', 'shop').spec, { workload: 'web' });
  // Injecting the output again changes nothing (the webhook would also leave these pods alone).
  const again = injectManifests(renderObjects(objects, 'yaml'), CFG);
  assert.deepEqual(again.objects, objects);
  assert.equal(parseAllDocuments(renderObjects(objects, 'yaml')).length, 5);
  assert.throws(() => injectManifests('a: [b', CFG), /document 1/);
});

void test('examples/kubernetes/hello.yaml: valid as written and once injected', async () => {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(new URL('../../examples/kubernetes/hello.yaml', import.meta.url), 'utf8');
  for (const d of parseAllDocuments(text)) validateK8s(d.toJS());
  const { objects, report } = injectManifests(text, CFG);
  assert.deepEqual(report, ['deployment/web injected', 'deployment/client injected']);
  for (const o of objects) validateK8s(o);
});
