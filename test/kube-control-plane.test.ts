// The control plane as it runs in a cluster (`outrigger control-plane --store kubernetes`), in-process
// against the API server stand-in with its Secrets in files as the kubelet would mount them: probes,
// the injector over HTTPS, identity over gRPC with TokenReview and the pod binding, policy over gRPC
// from the policy objects the store watches. Then `outrigger
// check`, before and after install, against the same stand-in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { GrpcChannel, type GrpcError } from '../src/api/grpc/channel.js';
import { certify } from '../src/api/identity.js';
import { watchInboundPolicy, type InboundPolicy } from '../src/api/policy.js';
import { startKubeControlPlane } from '../src/cli/control-plane-start.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { x509 } from '../src/control/identity/x509.js';
import { makeServingTls } from '../src/kube/certs.js';
import { formatResult, runChecks, type CheckResult } from '../src/kube/check.js';
import { installObjects, type K8sObject } from '../src/kube/install.js';
import { FakeApiServer, kubeConfigFor, type Obj } from './kube-apiserver.js';
import { workloadCertificate } from './control-plane.js';

const FIXTURES = new URL('../../test/fixtures/kube/', import.meta.url);
const recorded = async () =>
  (JSON.parse(await readFile(new URL('recorded.json', FIXTURES), 'utf8')) as { items: Obj[] }).items;

async function csrFor(id: string): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  return (
    await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }])],
    })
  ).toString('pem');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function httpsPost(port: number, ca: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'outrigger-injector.mesh.svc',
        port,
        path: '/inject',
        method: 'POST',
        ca,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }),
        );
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

void test('control-plane --store kubernetes: probes, the injector and identity, from mounted Secrets and the API server', async (t) => {
  const api = new FakeApiServer();
  for (const o of await recorded()) api.put(o);
  api.tokenReview = (body) =>
    body.spec?.token === 'good'
      ? {
          status: {
            authenticated: true,
            audiences: body.spec.audiences,
            user: {
              username: 'system:serviceaccount:shop:web',
              extra: {
                'authentication.kubernetes.io/pod-name': ['web-7d9f8b6c5-4xk2p'],
                'authentication.kubernetes.io/pod-uid': ['5b0c1f0e-8a51-4a43-9d5e-3f7f2a0c9b11'],
              },
            },
          },
        }
      : { status: { authenticated: false, error: 'invalid bearer token' } };
  const url = await api.listen();
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-kube-cp-'));
  const pems = await MeshCa.generatePems('cluster.local');
  const tls = await makeServingTls(['outrigger-injector.mesh.svc']);
  await mkdir(join(dir, 'identity'));
  await mkdir(join(dir, 'tls'));
  await writeFile(join(dir, 'identity', 'ca.crt'), pems.trustAnchorPem);
  await writeFile(join(dir, 'identity', 'issuer.crt'), pems.issuerCertPem);
  await writeFile(join(dir, 'identity', 'issuer.key'), pems.issuerKeyPem, { mode: 0o600 });
  await writeFile(join(dir, 'tls', 'tls.crt'), tls.certPem);
  await writeFile(join(dir, 'tls', 'tls.key'), tls.keyPem);
  const cp = await startKubeControlPlane({
    kubeConfig: kubeConfigFor(url),
    namespace: 'mesh',
    trustDomain: 'cluster.local',
    identityLifetimeSeconds: 3600,
    tokenAudience: 'identity.outrigger.io',
    image: 'registry.example/outrigger:test',
    host: '127.0.0.1',
    grpcPort: 0,
    webhookPort: 0,
    adminPort: 0,
    identityDir: join(dir, 'identity'),
    injectorTlsDir: join(dir, 'tls'),
    tlsReloadMs: 50,
    defaultInboundPolicy: 'cluster-authenticated',
    clusterNetworks: ['10.244.0.0/16'],
    log: pino({ level: 'silent' }),
  });
  // The API's own client, as the proxies use it: TLS, the control plane checked for its identity in the
  // install namespace; once it holds the pod's certificate (the policy service needs it) it presents it.
  const controlTls = {
    trustAnchors: pems.trustAnchorPem,
    serverIdentity: 'spiffe://cluster.local/ns/mesh/sa/outrigger-control-plane',
  };
  assert.equal(cp.grpc.identity, controlTls.serverIdentity);
  const channel = new GrpcChannel(`127.0.0.1:${cp.grpc.address.port}`, { tls: controlTls });
  const ca = await MeshCa.fromPems(pems);
  channel.setClientCertificate(await workloadCertificate(ca, { namespace: 'shop', serviceAccount: 'web' }));
  // In another namespace the control plane would be another identity: refused before anything is sent.
  const elsewhere = new GrpcChannel(`127.0.0.1:${cp.grpc.address.port}`, {
    tls: { ...controlTls, serverIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane' },
  });
  const wrong = (await certify(elsewhere, { token: 'good', csr_pem: 'x' }).catch((e: unknown) => e)) as GrpcError;
  elsewhere.close();
  assert.equal(wrong.code, grpc.status.UNAVAILABLE);
  assert.match(
    wrong.details,
    /presents the identity spiffe:\/\/cluster\.local\/ns\/mesh\/sa\/outrigger-control-plane, expected spiffe:\/\/cluster\.local\/ns\/outrigger\/sa\/outrigger-control-plane/,
  );
  t.after(async () => {
    channel.close();
    await cp.close();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });
  const probe = async (path: string) => (await fetch(`http://127.0.0.1:${cp.adminPort}${path}`)).status;
  assert.equal(await probe('/live'), 200);
  await cp.store.ready;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await probe('/ready'), 200);

  // The injector: the namespace annotation comes from the store's cache; the proxy is pointed at this
  // control plane's Service in its namespace.
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-', namespace: 'shop' },
    spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'web' }] },
  };
  const ans = await httpsPost(cp.webhook.port, tls.caPem, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u1', operation: 'CREATE', namespace: 'shop', object: pod },
  });
  assert.equal(ans.status, 200);
  const ops = JSON.parse(Buffer.from(ans.body.response.patch as string, 'base64').toString('utf8')) as {
    path: string;
    value: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  }[];
  const proxy = ops.find((o) => o.path === '/spec/initContainers')?.value[1];
  const proxyEnv = (name: string) =>
    proxy.env.find((e: { name: string }) => e.name === name)?.value as string | undefined;
  assert.equal(proxyEnv('OUTRIGGER_PROXY_DESTINATION_ADDR'), 'outrigger-control-plane.mesh.svc:8086');
  assert.equal(proxyEnv('OUTRIGGER_PROXY_POLICY_ADDR'), 'outrigger-control-plane.mesh.svc:8086');
  assert.equal(proxyEnv('OUTRIGGER_PROXY_TRUST_ANCHORS_FILE'), '/var/run/outrigger/trust/ca-bundle.crt');
  assert.equal(proxyEnv('OUTRIGGER_PROXY_CONTROL_IDENTITY'), controlTls.serverIdentity);
  assert.equal(
    proxyEnv('OUTRIGGER_PROXY_DEFAULT_INBOUND_POLICY'),
    'cluster-authenticated',
    "the mesh's default, as this control plane was started with",
  );

  // Policy: the Kubernetes store's policy objects, the cluster networks and the mesh default, served
  // over gRPC per pod as the proxies' policy client asks.
  api.put({
    apiVersion: 'policy.outrigger.io/v1beta1',
    kind: 'Server',
    metadata: { name: 'web-http', namespace: 'shop' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, port: 'http', proxyProtocol: 'HTTP/1' },
  });
  api.put({
    apiVersion: 'policy.outrigger.io/v1beta1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'web-all', namespace: 'shop' },
    spec: {
      targetRef: { group: 'policy.outrigger.io', kind: 'Server', name: 'web-http' },
      requiredAuthenticationRefs: [{ kind: 'ServiceAccount', name: 'frontend' }],
    },
  });
  const answer = await new Promise<InboundPolicy>((resolve, reject) => {
    const call = watchInboundPolicy(
      channel,
      { namespace: 'shop', pod: 'web-7d9f8b6c5-4xk2p' },
      {
        message: (m) => {
          if (m.ports.length > 0 && m.ports[0]?.authorizations.length === 1) {
            call.cancel();
            resolve(m);
          }
        },
        end: (s) =>
          s.code === grpc.status.CANCELLED
            ? undefined
            : reject(new Error(`policy watch ended: ${s.code} ${s.details}`)),
      },
    );
  });
  assert.equal(answer.known, true);
  assert.equal(answer.default_policy, 'cluster-authenticated');
  assert.deepEqual(
    answer.default_authorizations[0]?.all.flatMap((r) => r.networks.map((n) => n.cidr)),
    ['10.244.0.0/16'],
  );
  assert.equal(answer.ports[0]?.port, 8080, "the named port, from the pod's containers");
  assert.equal(answer.ports[0]?.server, 'shop/web-http');
  assert.deepEqual(answer.ports[0]?.authorizations[0]?.all[0]?.identities, [
    'spiffe://cluster.local/ns/shop/sa/frontend',
  ]);

  // A namespace the watch has not delivered yet (the stand-in holds its events back): read directly.
  api.partitioned = true;
  api.put({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'fresh', annotations: { 'outrigger.io/inject': 'enabled' } },
  });
  const fresh = await httpsPost(cp.webhook.port, tls.caPem, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u3',
      operation: 'CREATE',
      namespace: 'fresh',
      object: { ...pod, metadata: { generateName: 'x-', namespace: 'fresh' } },
    },
  });
  assert.equal(cp.store.namespaceAnnotations('fresh'), undefined);
  assert.equal(fresh.body.response.patchType, 'JSONPatch');
  api.partitioned = false;

  // Identity: TokenReview says who, the pod cache says the pod is there, the CA from the files signs.
  const id = 'spiffe://cluster.local/ns/shop/sa/web';
  const res = await certify(channel, { token: 'good', csr_pem: await csrFor(id) });
  assert.equal(res.identity, id);
  assert.equal(res.trust_anchor_pem.trim(), pems.trustAnchorPem.trim());
  assert.equal(new X509Certificate(res.leaf_pem).subjectAltName, `URI:${id}`);
  const refused = (await certify(channel, { token: 'forged', csr_pem: await csrFor(id) }).catch(
    (e: unknown) => e,
  )) as GrpcError;
  assert.equal(refused.code, grpc.status.UNAUTHENTICATED);
  api.delete({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-7d9f8b6c5-4xk2p', namespace: 'shop' } });
  await new Promise((r) => setTimeout(r, 100));
  const gone = (await certify(channel, { token: 'good', csr_pem: await csrFor(id) }).catch(
    (e: unknown) => e,
  )) as GrpcError;
  assert.equal(gone.code, grpc.status.UNAUTHENTICATED, 'a token whose pod is gone is worth nothing');
  assert.match(gone.details, /does not exist now/);

  // The injector's certificate is read again when the mounted Secret changes.
  const next = await makeServingTls(['outrigger-injector.mesh.svc']);
  await writeFile(join(dir, 'tls', 'tls.crt'), next.certPem);
  await writeFile(join(dir, 'tls', 'tls.key'), next.keyPem);
  let reloaded = false;
  for (let i = 0; i < 100 && !reloaded; i++) {
    await new Promise((r) => setTimeout(r, 20));
    reloaded = await httpsPost(cp.webhook.port, next.caPem, { request: { uid: 'u2', operation: 'DELETE' } }).then(
      () => true,
      () => false,
    );
  }
  assert.ok(reloaded, 'serves the new certificate');
});

// ---- outrigger check ------------------------------------------------------------------------------

async function installed(
  api: FakeApiServer,
  o: { readyReplicas: number; now?: Date; notEstablished?: string },
): Promise<K8sObject[]> {
  const objs = await installObjects({
    namespace: 'outrigger',
    trustDomain: 'cluster.local',
    identityLifetimeSeconds: 3600,
    image: 'x',
    replicas: 2,
    failurePolicy: 'Ignore',
  });
  // The status an API server gives them: the Deployment's replicas, the CRDs' Established condition.
  const status = (obj: K8sObject) =>
    obj.kind === 'Deployment'
      ? { status: { readyReplicas: o.readyReplicas, replicas: 2 } }
      : obj.kind === 'CustomResourceDefinition'
        ? {
            status: {
              conditions: [{ type: 'Established', status: obj.metadata.name === o.notEstablished ? 'False' : 'True' }],
            },
          }
        : {};
  for (const obj of objs) api.put({ ...obj, ...status(obj) } as Obj);
  for (const r of await recorded()) api.put(r);
  return objs;
}

const line = (results: CheckResult[], re: RegExp) => {
  const found = results.filter((r) => re.test(r.name));
  assert.equal(found.length, 1, `one check named ${re}: ${results.map((r) => r.name).join(' | ')}`);
  return found[0] as CheckResult;
};

void test('check: after install, one line per check, ✓ where healthy and ✗ with a hint where not', async () => {
  const api = new FakeApiServer();
  const installedObjects = installed(api, { readyReplicas: 2 });
  await installedObjects;
  api.serviceProxy = (ns, svc, path) =>
    ns === 'outrigger' && svc === 'https:outrigger-injector:443' && path === 'live'
      ? { status: 200, body: '{"ok":true}' }
      : { status: 404, body: '' };
  const objs = await installedObjects;
  const dataOf = (kind: string, name: string) =>
    (objs.find((o) => o.kind === kind && o.metadata.name === name) as unknown as { data: Record<string, string> }).data;
  const dec = (k: string) =>
    Buffer.from(dataOf('Secret', 'outrigger-identity')[k] as string, 'base64').toString('utf8');
  const bundleText = dataOf('ConfigMap', 'outrigger-trust-anchors')['ca-bundle.crt'] as string;
  const generation = /generation: (\d+)/.exec(bundleText)?.[1];
  api.podProxy = (_ns, pod, path) =>
    pod.endsWith(':4191') && path === 'metrics'
      ? {
          status: 200,
          body: [
            `identity_trust_anchors{fingerprint="${new X509Certificate(dec('ca.crt')).fingerprint256}",subject="x",not_after="y"} 1`,
            `identity_cert_issuer{fingerprint="${new X509Certificate(dec('issuer.crt')).fingerprint256}",subject="x"} 1`,
            `identity_trust_bundle_generation ${generation}`,
          ].join('\n'),
        }
      : { status: 404, body: '' };
  const url = await api.listen();
  try {
    const printed: string[] = [];
    const results = await runChecks({ kubeConfig: kubeConfigFor(url), namespace: 'outrigger' }, false, (r) =>
      printed.push(formatResult(r)),
    );
    assert.equal(printed.length, results.length);
    for (const re of [
      /^API server reachable/,
      /^Kubernetes version v1\.31\.2/,
      /^RBAC: the control plane/,
      /^CRDs installed \(5\)/,
      /^control plane ready \(2\/2\)/,
      /^webhook configured/,
      /^webhook reachable/,
      /^trust anchor certificate/,
      /^issuer certificate/,
      /^injector certificate/,
      /^proxies at version 0\.1\.0 \(2 meshed pods\)/,
    ]) {
      assert.ok(line(results, re).ok, re.source);
    }
    // The trust bundle: one anchor, no rotation; the one ready proxy's metrics (through the API
    // server's pod proxy) are read, and it trusts that anchor.
    assert.match(line(results, /^trust rotation stage/).detail ?? '', /^no rotation: one anchor/);
    assert.equal(line(results, /^proxies follow the trust bundle/).detail, '1/1');
    const notReady = line(results, /^proxies ready/);
    assert.equal(notReady.ok, false);
    assert.match(notReady.detail ?? '', /shop\/web-7d9f8b6c5-9qz8m/);
    assert.match(formatResult(notReady), /^✗ proxies ready: .*\n {4}hint: /);
    assert.ok(printed.filter((p) => p.startsWith('✓')).length >= 10);
  } finally {
    await api.close();
  }
});

void test('check: what fails is said: control plane not ready, webhook unreachable, certificates near expiry', async () => {
  const api = new FakeApiServer();
  await installed(api, { readyReplicas: 0, notEstablished: 'servers.policy.outrigger.io' });
  api.allow = (a) =>
    !(a.user === 'system:serviceaccount:outrigger:outrigger-control-plane' && a.resource === 'tokenreviews');
  const url = await api.listen();
  try {
    // 360 days on: the webhook's and the issuer's certificates (a year) expire within 30 days.
    const results = await runChecks(
      { kubeConfig: kubeConfigFor(url), namespace: 'outrigger', now: new Date(Date.now() + 360 * 86_400_000) },
      false,
    );
    assert.match(line(results, /^control plane ready/).detail ?? '', /0\/2 replicas ready/);
    assert.match(
      line(results, /^CRDs installed/).detail ?? '',
      /^missing: servers\.policy\.outrigger\.io \(not established\)$/,
    );
    assert.match(
      line(results, /^RBAC: the control plane/).detail ?? '',
      /outrigger-control-plane may not create tokenreviews\.authentication\.k8s\.io$/,
    );
    assert.equal(line(results, /^webhook reachable/).ok, false);
    assert.match(line(results, /^issuer certificate/).detail ?? '', /expires .* in \d days/);
    assert.match(line(results, /^injector certificate/).detail ?? '', /expires/);
    assert.ok(line(results, /^trust anchor certificate/).ok, 'the trust anchor lives ten years');
  } finally {
    await api.close();
  }
});

void test('check --pre: version, RBAC and the namespace; an unreachable API stops the rest', async () => {
  const api = new FakeApiServer();
  api.version = { major: '1', minor: '28+', gitVersion: 'v1.28.9-eks-1' };
  api.allow = (a) => a.resource !== 'mutatingwebhookconfigurations';
  const url = await api.listen();
  try {
    const results = await runChecks({ kubeConfig: kubeConfigFor(url), namespace: 'outrigger' }, true);
    assert.equal(line(results, /^Kubernetes version/).ok, false);
    assert.match(line(results, /^Kubernetes version/).hint ?? '', /native sidecars/);
    assert.match(
      line(results, /^RBAC/).detail ?? '',
      /^not allowed to create mutatingwebhookconfigurations\.admissionregistration\.k8s\.io$/,
    );
    assert.ok(line(results, /^namespace outrigger is free/).ok);
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'outrigger' } });
    api.version = { major: '1', minor: '30', gitVersion: 'v1.30.0' };
    api.allow = () => true;
    const again = await runChecks({ kubeConfig: kubeConfigFor(url), namespace: 'outrigger' }, true);
    assert.deepEqual(
      again.map((r) => r.ok),
      [true, true, true, false],
    );
  } finally {
    await api.close();
  }
  const down = await runChecks({ kubeConfig: kubeConfigFor(url), namespace: 'outrigger' }, false);
  assert.equal(down.length, 1);
  assert.equal(down[0]?.ok, false);
  assert.match(formatResult(down[0] as CheckResult), /^✗ API server reachable: .*\n {4}hint: check your kubeconfig/);
});
