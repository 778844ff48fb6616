import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROXY_NODE_OPTIONS } from '../proxy/node-options.js';
import {
  applyOps,
  decide,
  injectObject,
  pointer,
  podMesh,
  proxyResources,
  rewriteProbes,
  templatePath,
} from './inject.js';
import { MeshCa } from '../control/identity/ca.js';

const CFG = {
  image: 'img',
  controlAddr: 'cp:8086',
  trustDomain: 'cluster.local',
  controlIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
};
const pod = (annotations: Record<string, string> = {}, spec: Record<string, unknown> = {}) => ({
  kind: 'Pod',
  metadata: { annotations },
  spec: { containers: [{ name: 'app', image: 'a' }], ...spec },
});

void test('decide: the webhook is opt-in (pod over namespace); offline injects unless disabled', () => {
  const en = { 'outrigger.io/inject': 'enabled' };
  const dis = { 'outrigger.io/inject': 'disabled' };
  assert.equal(decide(pod(), en, 'webhook').inject, true);
  assert.equal(decide(pod(en), {}, 'webhook').inject, true);
  assert.equal(decide(pod(en), dis, 'webhook').inject, true, 'the pod wins over its namespace');
  assert.equal(decide(pod(dis), en, 'webhook').inject, false);
  assert.equal(decide(pod(), {}, 'webhook').inject, false);
  assert.equal(decide(pod(), dis, 'webhook').inject, false);
  assert.equal(decide(pod(), {}, 'offline').inject, true);
  assert.equal(decide(pod(dis), {}, 'offline').inject, false);
  assert.equal(decide(pod({}, { hostNetwork: true }), en, 'webhook').inject, false);
  assert.equal(decide({ kind: 'Pod', metadata: {} }, en, 'webhook').inject, false, 'no spec');
  const injected = pod({}, { initContainers: [{ name: 'outrigger-proxy', image: 'x' }] });
  assert.deepEqual(decide(injected, en, 'webhook'), { inject: false, reason: 'already injected' });
});

void test('podMesh: each port annotation of the pod wins over the namespace, field by field; ours that the runtime does not know are not problems', () => {
  const { mesh, problems } = podMesh(
    pod({ 'config.outrigger.io/skip-inbound-ports': '22', 'config.outrigger.io/proxy-cpu-limit': '1' }),
    { 'config.outrigger.io/skip-inbound-ports': '80', 'config.outrigger.io/opaque-ports': '5432' },
  );
  assert.deepEqual(mesh.skipInboundPorts, [{ from: 22, to: 22 }]);
  assert.deepEqual(mesh.opaquePorts, [{ from: 5432, to: 5432 }]);
  assert.deepEqual(problems, []);
  assert.match(
    podMesh(pod({ 'config.outrigger.io/opaque-port': '1' }), {}).problems[0] ?? '',
    /did you mean "config.outrigger.io\/opaque-ports"/,
  );
});

void test('proxyResources: quantities from annotations over the defaults; bad ones are problems', () => {
  assert.deepEqual(proxyResources({}).resources, { requests: { cpu: '20m', memory: '64Mi' } });
  assert.deepEqual(
    proxyResources({ 'config.outrigger.io/proxy-cpu-request': '0.1', 'config.outrigger.io/proxy-memory-limit': '1Gi' })
      .resources,
    {
      requests: { cpu: '0.1', memory: '64Mi' },
      limits: { memory: '1Gi' },
    },
  );
  for (const bad of ['1 Gi', '-1', 'lots', '1.2.3', ''])
    assert.equal(proxyResources({ 'config.outrigger.io/proxy-memory-limit': bad }).problems.length, 1, bad);
  for (const good of ['100m', '1e3', '128974848', '129M', '.5', '1.5Gi'])
    assert.deepEqual(proxyResources({ 'config.outrigger.io/proxy-memory-limit': good }).problems, [], good);
});

void test("JSON pointers and templates: escaped keys, each workload kind's template path", () => {
  assert.equal(pointer('a/b~c'), 'a~1b~0c');
  assert.deepEqual(applyOps({ m: {} }, [{ op: 'add', path: `/m/${pointer('x/y~z')}`, value: 1 }]), {
    m: { 'x/y~z': 1 },
  });
  assert.equal(templatePath('Pod'), '');
  assert.equal(templatePath('StatefulSet'), '/spec/template');
  assert.equal(templatePath('CronJob'), '/spec/jobTemplate/spec/template');
  assert.equal(templatePath('Service'), undefined);
  const noMeta = { kind: 'Pod', spec: { containers: [{ name: 'a', image: 'a' }] } };
  const { ops } = injectObject(noMeta, {}, CFG, 'offline');
  assert.deepEqual(ops[0], { op: 'add', path: '/metadata', value: {} }, 'a pod without metadata gets it first');
  assert.ok(applyOps(noMeta, ops));
});

void test("the proxy container's environment, expanded as the kubelet does, is a valid proxy configuration with mTLS, policy and the pod's identity on", async () => {
  const { loadProxyConfig, identitySettings, controlTls } = await import('../proxy/config.js');
  const owned = pod({
    'config.outrigger.io/opaque-ports': '5432',
    'config.outrigger.io/default-inbound-policy': 'all-authenticated',
  });
  Object.assign(owned.metadata, {
    labels: { 'pod-template-hash': '6b7c' },
    ownerReferences: [{ kind: 'ReplicaSet', name: 'web-6b7c', controller: true }],
  });
  const { ops } = injectObject(owned, {}, CFG, 'offline');
  const proxy = (
    ops.find((o) => o.path === '/spec/initContainers')?.value as {
      env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
    }[]
  )[1];
  const downward: Record<string, string> = {
    'metadata.namespace': 'shop',
    'metadata.name': 'web-0',
    'spec.serviceAccountName': 'web',
  };
  const env: Record<string, string> = {};
  for (const e of proxy?.env ?? []) {
    // Kubernetes: $(VAR) refers to a variable defined earlier in the list.
    env[e.name] =
      e.valueFrom !== undefined
        ? (downward[e.valueFrom.fieldRef.fieldPath] as string)
        : (e.value ?? '').replace(/\$\(([A-Z_]+)\)/g, (_m, v: string) => env[v] ?? '');
  }
  // The bundle comes from the mounted ConfigMap: here a file of the same content.
  assert.equal(env.OUTRIGGER_PROXY_TRUST_ANCHORS_FILE, '/var/run/outrigger/trust/ca-bundle.crt');
  const anchor = (await MeshCa.generatePems('cluster.local')).trustAnchorPem;
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-inject-'));
  writeFileSync(join(dir, 'ca-bundle.crt'), `# outrigger-trust-generation: 1\n${anchor}`);
  env.OUTRIGGER_PROXY_TRUST_ANCHORS_FILE = join(dir, 'ca-bundle.crt');
  const cfg = loadProxyConfig({}, env);
  assert.deepEqual(identitySettings(cfg)?.identity, 'spiffe://cluster.local/ns/shop/sa/web');
  assert.equal(identitySettings(cfg)?.tokenFile, '/var/run/secrets/outrigger.io/identity/token');
  // The control plane is reached over TLS, checked against the anchor for its identity.
  const tls = controlTls(cfg);
  assert.equal(
    typeof tls?.trustAnchors === 'function' ? tls.trustAnchors() : undefined,
    `# outrigger-trust-generation: 1\n${anchor}`,
  );
  rmSync(dir, { recursive: true });
  assert.equal(tls?.serverIdentity, 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane');
  // What the local runtime passes as flags (runtime/mesh.ts runningPod).
  assert.equal(cfg.policyAddr?.host, 'cp');
  assert.equal(cfg.policyAddr?.port, 8086);
  assert.equal(cfg.pod, 'shop/web-0');
  assert.equal(cfg.defaultInboundPolicy, 'all-authenticated');
  assert.equal(cfg.podNamespace, 'shop');
  assert.equal(cfg.podName, 'web-0');
  assert.equal(cfg.podWorkload, 'web');
});

void test("the default inbound policy: the pod's annotation, its namespace's (webhook), the mesh's, all-unauthenticated", () => {
  const value = (
    p: ReturnType<typeof pod>,
    ns: Record<string, string>,
    cfg: typeof CFG & { defaultInboundPolicy?: 'deny' },
    mode: 'webhook' | 'offline',
  ) => {
    const { ops } = injectObject(p, ns, cfg, mode);
    const proxy = (
      ops.find((o) => o.path === '/spec/initContainers')?.value as { env: { name: string; value?: string }[] }[]
    )[1];
    return proxy?.env.find((e) => e.name === 'OUTRIGGER_PROXY_DEFAULT_INBOUND_POLICY')?.value;
  };
  const key = 'config.outrigger.io/default-inbound-policy';
  const en = { 'outrigger.io/inject': 'enabled' };
  assert.equal(value(pod({ [key]: 'deny' }), { ...en, [key]: 'all-authenticated' }, CFG, 'webhook'), 'deny');
  assert.equal(value(pod(), { ...en, [key]: 'all-authenticated' }, CFG, 'webhook'), 'all-authenticated');
  assert.equal(value(pod(), en, { ...CFG, defaultInboundPolicy: 'deny' }, 'webhook'), 'deny');
  assert.equal(value(pod(), en, CFG, 'webhook'), 'all-unauthenticated');
});

void test("the sidecar gets the proxy's V8 settings in NODE_OPTIONS, as the local runtime gives them on its command line", () => {
  const { ops } = injectObject(pod(), { 'outrigger.io/inject': 'enabled' }, CFG, 'webhook');
  const proxy = (
    ops.find((o) => o.path === '/spec/initContainers')?.value as { env: { name: string; value?: string }[] }[]
  )[1];
  const value = proxy?.env.find((e) => e.name === 'NODE_OPTIONS')?.value;
  assert.equal(value, PROXY_NODE_OPTIONS.join(' '));
  // Node refuses to start on a flag NODE_OPTIONS does not allow: this is what the container's node does.
  const run = spawnSync(process.execPath, ['-e', '0'], {
    env: { ...process.env, NODE_OPTIONS: value },
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
});

void test('rewriteProbes: httpGet and tcpSocket probes go to the admin port, their targets to the proxy; the rest stays', async () => {
  const { loadProxyConfig } = await import('../proxy/config.js');
  const app = {
    name: 'web',
    image: 'w',
    ports: [{ name: 'http', containerPort: 8080 }],
    readinessProbe: {
      httpGet: { path: '/ready', port: 'http', httpHeaders: [{ name: 'X-A', value: 'b' }] },
      periodSeconds: 5,
    },
    livenessProbe: { tcpSocket: { port: 8080 }, failureThreshold: 4 },
    startupProbe: { grpc: { port: 9090 } },
  };
  const sidecarish = {
    name: 'db',
    image: 'd',
    livenessProbe: { tcpSocket: { port: 5432 } },
    readinessProbe: { httpGet: { path: '/', port: 80, host: 'example.com' } },
    startupProbe: { httpGet: { path: '/', port: 'nope' } },
  };
  const { containers, probes } = rewriteProbes([app, sidecarish], [{ from: 5432, to: 5432 }]);
  assert.deepEqual(probes, {
    'web-readiness': { port: 8080, scheme: 'HTTP', path: '/ready', headers: [{ name: 'X-A', value: 'b' }] },
    'web-liveness': { port: 8080, scheme: 'TCP' },
  });
  assert.deepEqual(containers[0]?.readinessProbe, {
    httpGet: { path: '/app-probe/web-readiness', port: 4191, scheme: 'HTTP' },
    periodSeconds: 5,
  });
  assert.deepEqual(containers[0]?.livenessProbe, {
    httpGet: { path: '/app-probe/web-liveness', port: 4191, scheme: 'HTTP' },
    failureThreshold: 4,
  });
  assert.deepEqual(containers[0]?.startupProbe, app.startupProbe, 'gRPC probes are not forwarded');
  assert.equal(containers[1], sidecarish, 'skipped port, another host, an unknown port name: untouched');
  // Injected: the containers are patched, and the proxy's setting parses.
  const { ops } = injectObject({ kind: 'Pod', metadata: {}, spec: { containers: [app] } }, {}, CFG, 'offline');
  assert.deepEqual(ops.find((o) => o.path === '/spec/containers')?.value, [containers[0]]);
  const proxy = (
    ops.find((o) => o.path === '/spec/initContainers')?.value as { env: { name: string; value?: string }[] }[]
  )[1];
  const json = proxy?.env.find((e) => e.name === 'OUTRIGGER_PROXY_APP_PROBES')?.value ?? '';
  assert.deepEqual(Object.fromEntries(loadProxyConfig({ appProbes: json }, {}).appProbes ?? []), probes);
  assert.equal(
    injectObject(pod(), {}, CFG, 'offline').ops.some((o) => o.path === '/spec/containers'),
    false,
    'no probes: the containers are not touched',
  );
});
