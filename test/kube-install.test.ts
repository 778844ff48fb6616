// `outrigger install` / `uninstall`: every object printed validates against the Kubernetes OpenAPI
// schemas (kubernetes-models, offline), and says what the issue asks for (non-root, read-only root
// file system, dropped capabilities, probes, requests, PodDisruptionBudget, least-privilege RBAC, the
// CA bundle of the injector's certificate). And the CRD generator: structural schemas from zod ones,
// which validate example objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { MeshCa } from '../src/control/identity/ca.js';
import { crd, specSchema, type CrdKind, type JsonSchema } from '../src/kube/crds.js';
import { installObjects, uninstallObjects, type K8sObject } from '../src/kube/install.js';
import { POLICY_CRDS, POLICY_RESOURCES, policyCrdKinds } from '../src/kube/policy-crds.js';
import { renderObjects } from '../src/kube/render.js';
import { parseTrustBundle } from '../src/proxy/identity/bundle.js';
import { POLICY_API_VERSION, POLICY_KINDS } from '../src/manifests/policy.js';
import { grpcRouteSchema, httpRouteSchema } from '../src/manifests/schema.js';
import { validateOpenApi } from './kube-openapi.js';
import { unknownContainerFields, validateK8s } from './kube-validate.js';

const OPTS = {
  namespace: 'mesh-system',
  trustDomain: 'example.org',
  identityLifetimeSeconds: 3600,
  image: 'registry.example/outrigger:test',
  replicas: 2,
  failurePolicy: 'Ignore' as const,
};

const byKind = (objs: readonly K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const one = (objs: readonly K8sObject[], kind: string, name?: string) => {
  const found = byKind(objs, kind).filter((o) => name === undefined || o.metadata.name === name);
  assert.equal(found.length, 1, `one ${kind} ${name ?? ''}`);
  return found[0] as K8sObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};

void test('install: every object validates offline, in apply order, namespaced into --namespace', async () => {
  const objs = await installObjects(OPTS);
  for (const o of objs) validateK8s(o);
  assert.equal(objs[0]?.kind, 'Namespace');
  assert.equal(
    objs.at(-1)?.kind,
    'MutatingWebhookConfiguration',
    'the webhook last: its Service exists before the API server calls it',
  );
  for (const o of objs)
    if (
      ![
        'Namespace',
        'ClusterRole',
        'ClusterRoleBinding',
        'MutatingWebhookConfiguration',
        'CustomResourceDefinition',
      ].includes(o.kind)
    )
      assert.equal(o.metadata.namespace, 'mesh-system', `${o.kind} ${o.metadata.name}`);
  // The YAML is what kubectl reads: it parses back to the same objects.
  const docs = parseAllDocuments(renderObjects(objs, 'yaml')).map((d) => d.toJS() as unknown);
  assert.deepEqual(docs, JSON.parse(JSON.stringify(objs)));
  assert.deepEqual(
    (JSON.parse(renderObjects(objs, 'json')) as { items: unknown[] }).items,
    JSON.parse(JSON.stringify(objs)),
  );
});

void test('install: the control plane Deployment is hardened, probed, sized and spread; a PDB keeps one up', async () => {
  const objs = await installObjects(OPTS);
  const d = one(objs, 'Deployment');
  assert.equal(d.spec.replicas, 2);
  const pod = d.spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(unknownContainerFields(pod.containers), []);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(c.image, OPTS.image);
  for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.ok(c[p]?.httpGet, p);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory);
  assert.deepEqual(c.args.slice(0, 3), ['control-plane', '--store', 'kubernetes']);
  assert.ok(c.args.includes('example.org') && c.args.includes('3600'));
  const arg = (args: string[], name: string) => args[args.indexOf(name) + 1];
  assert.equal(arg(c.args, '--default-inbound-policy'), 'all-unauthenticated');
  assert.equal(arg(c.args, '--cluster-networks'), '10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16');
  const narrowed = one(
    await installObjects({
      ...OPTS,
      defaultInboundPolicy: 'cluster-authenticated',
      clusterNetworks: ['10.244.0.0/16'],
    }),
    'Deployment',
  ).spec.template.spec.containers[0].args as string[];
  assert.equal(arg(narrowed, '--default-inbound-policy'), 'cluster-authenticated');
  assert.equal(arg(narrowed, '--cluster-networks'), '10.244.0.0/16');
  // The flags are the control plane command's own.
  const { controlPlaneCommand } = await import('../src/cli/control-plane.js');
  const known = controlPlaneCommand().options.map((o) => o.long);
  for (const a of c.args.filter((x: string) => x.startsWith('--'))) assert.ok(known.includes(a), a);
  assert.equal(d.spec.template.metadata.annotations['outrigger.io/inject'], 'disabled');
  const pdb = one(objs, 'PodDisruptionBudget');
  assert.equal(pdb.spec.minAvailable, 1);
  assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
  for (const s of byKind(objs, 'Service')) assert.deepEqual((s as any).spec.selector, d.spec.selector.matchLabels); // eslint-disable-line @typescript-eslint/no-explicit-any
  const single = await installObjects({ ...OPTS, replicas: 1 });
  assert.equal(
    one(single, 'PodDisruptionBudget').spec.maxUnavailable,
    1,
    'one replica: a PDB that still lets nodes drain',
  );
});

void test('install: least-privilege RBAC: read what the store watches, create TokenReviews, write the trust bundle copies, nothing else (no Secrets)', async () => {
  const objs = await installObjects(OPTS);
  const role = one(objs, 'ClusterRole');
  for (const r of role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[]) {
    if (r.resources.includes('tokenreviews')) assert.deepEqual(r.verbs, ['create']);
    // The trust bundle's copies: read one by name, create, replace; never list or watch every ConfigMap.
    else if (r.resources.includes('configmaps')) assert.deepEqual(r.verbs, ['get', 'create', 'update']);
    else assert.deepEqual(r.verbs, ['get', 'list', 'watch'], r.resources.join(','));
    assert.ok(!r.resources.includes('secrets') && !r.resources.includes('*') && !r.apiGroups.includes('*'));
  }
  const resources = (role.rules as { resources: string[] }[]).flatMap((r) => r.resources);
  for (const r of [
    'pods',
    'services',
    'namespaces',
    'serviceaccounts',
    'endpointslices',
    'httproutes',
    'grpcroutes',
    ...POLICY_RESOURCES,
  ])
    assert.ok(resources.includes(r), r);
  // In step with the store: every resource it watches is readable, nothing else is (plus TokenReview).
  const { RESOURCES } = await import('../src/control/store/kubernetes/kubernetes.js');
  const watched = RESOURCES.map((r) => {
    const parts = r.path.split('/');
    return parts[1] === 'api' ? `/${parts[3]}` : `${parts[2]}/${parts[4]}`;
  });
  const granted = (role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[])
    .filter((r) => !r.resources.includes('tokenreviews') && !r.resources.includes('configmaps'))
    .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.map((x) => `${g}/${x}`)));
  assert.deepEqual([...granted].sort(), [...watched].sort());
  const binding = one(objs, 'ClusterRoleBinding');
  assert.deepEqual(binding.subjects, [
    { kind: 'ServiceAccount', name: one(objs, 'ServiceAccount').metadata.name, namespace: 'mesh-system' },
  ]);
  assert.equal(
    one(objs, 'Deployment').spec.template.spec.serviceAccountName,
    one(objs, 'ServiceAccount').metadata.name,
  );
});

void test('install: the CA Secrets load as a mesh CA, and the webhook trusts the injector certificate, which names its Service', async () => {
  const objs = await installObjects({ ...OPTS, failurePolicy: 'Fail' });
  const dec = (s: K8sObject, k: string) => Buffer.from((s as any).data[k], 'base64').toString('utf8'); // eslint-disable-line @typescript-eslint/no-explicit-any
  const id = one(objs, 'Secret', 'outrigger-identity');
  const ca = await MeshCa.fromPems(
    { trustAnchorPem: dec(id, 'ca.crt'), issuerCertPem: dec(id, 'issuer.crt'), issuerKeyPem: dec(id, 'issuer.key') },
    { trustDomain: 'example.org' },
  );
  assert.equal(ca.trustDomain, 'example.org');
  const tls = one(objs, 'Secret', 'outrigger-injector-tls');
  assert.equal(tls.type, 'kubernetes.io/tls');
  const webhookConfig = one(objs, 'MutatingWebhookConfiguration');
  const hook = webhookConfig.webhooks[0];
  assert.equal(Buffer.from(hook.clientConfig.caBundle, 'base64').toString('utf8'), dec(tls, 'ca.crt'));
  const cert = new X509Certificate(dec(tls, 'tls.crt'));
  assert.ok(cert.verify(new X509Certificate(dec(tls, 'ca.crt')).publicKey), 'signed by the caBundle CA');
  assert.ok(cert.checkHost(`${hook.clientConfig.service.name}.mesh-system.svc`), cert.subjectAltName);
  assert.equal(hook.failurePolicy, 'Fail');
  assert.equal(hook.sideEffects, 'None');
  assert.deepEqual(hook.rules, [
    { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
  ]);
  assert.ok(
    hook.namespaceSelector.matchExpressions[0].values.includes('kube-system') &&
      hook.namespaceSelector.matchExpressions[0].values.includes('mesh-system'),
  );
  const svc = byKind(objs, 'Service').find((s) => s.metadata.name === hook.clientConfig.service.name) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(svc.spec.ports[0].port, hook.clientConfig.service.port);
});

void test('install: a CA given by the user is used; a bad one stops the install', async () => {
  const pems = await MeshCa.generatePems('example.org');
  const objs = await installObjects({ ...OPTS, ca: pems });
  assert.equal(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    Buffer.from((one(objs, 'Secret', 'outrigger-identity') as any).data['issuer.crt'], 'base64').toString('utf8'),
    pems.issuerCertPem,
  );
  await assert.rejects(installObjects({ ...OPTS, ca: { ...pems, issuerKeyPem: 'nonsense' } }));
});

void test('install parts and uninstall: --crds, --control-plane; uninstall lists what install made, webhook first', async () => {
  const cp = await installObjects({ ...OPTS, part: 'control-plane' });
  assert.equal(byKind(cp, 'CustomResourceDefinition').length, 0);
  const crds = await installObjects({ ...OPTS, part: 'crds' });
  assert.ok(crds.every((o) => o.kind === 'CustomResourceDefinition'));
  assert.equal(crds.length, POLICY_CRDS.length);
  const un = uninstallObjects({ namespace: 'mesh-system' });
  // A delete needs kind and name only; the fields a create needs are filled in to validate the rest.
  const filler: Record<string, object> = {
    ClusterRoleBinding: { roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'x' } },
    CustomResourceDefinition: { spec: (crds[0] as Record<string, unknown>).spec as object },
  };
  for (const o of un) validateK8s({ ...o, ...(filler[o.kind] ?? {}) });
  assert.equal(un.filter((o) => o.kind === 'CustomResourceDefinition').length, 5);
  assert.equal(un[0]?.kind, 'MutatingWebhookConfiguration');
  assert.equal(un.at(-1)?.kind, 'Namespace');
  const made = new Set(
    (await installObjects(OPTS))
      .filter((o) => o.metadata.namespace === undefined)
      .map((o) => `${o.kind}/${o.metadata.name}`),
  );
  assert.deepEqual(
    new Set(un.map((o) => `${o.kind}/${o.metadata.name}`)),
    made,
    'every cluster-scoped object (namespaced ones go with the namespace)',
  );
});

// ---- the CRD generator ----------------------------------------------------------------------------

/** Kubernetes' structural schema rules (the ones zod output can break). */
function structuralProblems(s: JsonSchema, path = ''): string[] {
  const out: string[] = [];
  const typed =
    typeof s.type === 'string' ||
    s['x-kubernetes-int-or-string'] === true ||
    s['x-kubernetes-preserve-unknown-fields'] === true;
  if (!typed) out.push(`${path || '/'}: no type`);
  for (const k of [
    '$ref',
    '$schema',
    'const',
    'anyOf',
    'oneOf',
    'allOf',
    'not',
    'propertyNames',
    'patternProperties',
    '$defs',
    'definitions',
  ])
    if (k in s) out.push(`${path}: ${k}`);
  if (s.uniqueItems === true) out.push(`${path}: uniqueItems`);
  if (
    s.additionalProperties !== undefined &&
    (s.properties !== undefined || typeof s.additionalProperties === 'boolean')
  )
    out.push(`${path}: additionalProperties`);
  if (typeof s.pattern === 'string' && /\(\?[=!<]/.test(s.pattern)) out.push(`${path}: pattern with lookaround`);
  for (const [k, v] of Object.entries((s.properties as Record<string, JsonSchema> | undefined) ?? {}))
    out.push(...structuralProblems(v, `${path}/${k}`));
  if (s.items !== undefined) out.push(...structuralProblems(s.items as JsonSchema, `${path}[]`));
  if (typeof s.additionalProperties === 'object')
    out.push(...structuralProblems(s.additionalProperties as JsonSchema, `${path}{}`));
  return out;
}

/** Validates an object against a CRD's openAPIV3Schema as the API server would on create. */
function crdValidator(c: Record<string, unknown>): (o: unknown) => string[] {
  const schema = (c as any).spec.versions[0].schema.openAPIV3Schema as JsonSchema; // eslint-disable-line @typescript-eslint/no-explicit-any
  return (o) => validateOpenApi(schema, o);
}

const sample: CrdKind = {
  group: 'example.outrigger.io',
  version: 'v1alpha1',
  kind: 'Widget',
  plural: 'widgets',
  schema: z.strictObject({
    apiVersion: z.string(),
    kind: z.literal('Widget'),
    metadata: z.object({ name: z.string() }),
    spec: z.strictObject({
      port: z.union([z.int().min(1).max(65535), z.string().regex(/^[a-z]+$/)]),
      mode: z.enum(['fast', 'safe']).default('safe'),
      replicas: z.int().min(1).max(10).optional(),
      match: z.discriminatedUnion('type', [
        z.strictObject({ type: z.literal('Exact'), value: z.string() }),
        z.strictObject({ type: z.literal('Prefix'), value: z.string(), caseless: z.boolean().optional() }),
      ]),
      labels: z.record(z.string(), z.string()).optional(),
      tags: z.array(z.string().max(10)).max(3).optional(),
    }),
  }),
  printerColumns: [{ name: 'Port', type: 'string', jsonPath: '.spec.port' }],
};

void test('CRD generator: a structural schema from a zod schema, which validates example objects as zod does', () => {
  const c = crd(sample);
  validateK8s(c);
  const spec = specSchema(sample.schema);
  assert.deepEqual(structuralProblems(spec), []);
  assert.deepEqual((spec.properties as any).port, { 'x-kubernetes-int-or-string': true }); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual((spec.properties as any).match.properties.type, { type: 'string', enum: ['Exact', 'Prefix'] }); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual((spec.properties as any).labels, { type: 'object', additionalProperties: { type: 'string' } }); // eslint-disable-line @typescript-eslint/no-explicit-any
  const validate = crdValidator(c);
  const good = {
    apiVersion: 'example.outrigger.io/v1alpha1',
    kind: 'Widget',
    metadata: { name: 'w' },
    spec: { port: 8080, match: { type: 'Exact', value: '/' }, tags: ['a'] },
  };
  assert.deepEqual(validate(good), []);
  assert.ok(sample.schema.safeParse(good).success);
  for (const badSpec of [
    { port: 80, replicas: 11, match: { type: 'Exact', value: '/' } },
    { port: 80, match: { type: 'Exact', value: '/', caseless: 'yes' } },
    { port: 80, mode: 'slow', match: { type: 'Exact', value: '/' } },
    { port: 80, match: { type: 'Regex', value: '/' } },
    { port: 80, match: { type: 'Exact', value: '/' }, tags: ['a', 'b', 'c', 'd'] },
    { port: 80 },
  ]) {
    const bad = { ...good, spec: badSpec };
    assert.notDeepEqual(validate(bad), [], JSON.stringify(badSpec));
    assert.ok(!sample.schema.safeParse(bad).success);
  }
  // Looser than zod where a structural schema cannot say it (an int-or-string keeps no bounds): the
  // control plane's own validation stays the strict one.
  assert.deepEqual(validate({ ...good, spec: { ...good.spec, port: 70000 } }), []);
  const cols = (c as any).spec.versions[0].additionalPrinterColumns; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual(
    cols.map((x: { name: string }) => x.name),
    ['Port', 'Age'],
  );
});

void test("CRD generator: the manifests' own HTTPRoute and GRPCRoute schemas (large, real zod) come out structural and accept the examples", async () => {
  const { readFile } = await import('node:fs/promises');
  const routes = parseAllDocuments(
    await readFile(new URL('../../src/runtime/manifests/testdata/valid/routes.yaml', import.meta.url), 'utf8'),
  ).map((d) => d.toJS() as { kind: string });
  for (const [kind, schema] of [
    ['HTTPRoute', httpRouteSchema],
    ['GRPCRoute', grpcRouteSchema],
  ] as const) {
    const c = crd({ group: 'gateway.example.io', version: 'v1', kind, plural: `${kind.toLowerCase()}s`, schema });
    validateK8s(c);
    assert.deepEqual(structuralProblems(specSchema(schema)), [], kind);
    const validate = crdValidator(c);
    const examples = routes.filter((r) => r.kind === kind);
    assert.ok(examples.length > 0, `examples of ${kind}`);
    for (const r of examples) assert.deepEqual(validate(r), [], JSON.stringify(r).slice(0, 200));
  }
});

void test('policy CRDs: adding a kind is one entry; names for every policy kind; unknown kinds refused', () => {
  const kinds = policyCrdKinds({ Server: sample.schema });
  assert.equal(kinds[0]?.plural, 'servers');
  const c = crd(kinds[0] as CrdKind);
  validateK8s(c);
  assert.equal((c as any).metadata.name, 'servers.policy.outrigger.io'); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.throws(() => policyCrdKinds({ Gadget: sample.schema }), /no CRD names/);
  assert.equal(POLICY_RESOURCES.length, 5);
});

/** The policy objects of examples/policy.yaml and of docs/policy.md's YAML blocks (every kind). */
async function policyExamples(): Promise<{ kind: string; apiVersion: string; metadata: { name: string } }[]> {
  const { readFile } = await import('node:fs/promises');
  const example = await readFile(new URL('../../examples/policy.yaml', import.meta.url), 'utf8');
  const doc = await readFile(new URL('../../docs/policy.md', import.meta.url), 'utf8');
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  return [example, ...blocks]
    .flatMap((text) => parseAllDocuments(text).map((d) => d.toJS() as unknown))
    .filter(
      (o): o is { kind: string; apiVersion: string; metadata: { name: string } } =>
        typeof o === 'object' && o !== null && (o as { apiVersion?: unknown }).apiVersion === POLICY_API_VERSION,
    );
}

void test('policy CRDs: install --crds prints one CRD per policy kind, structural, with printer columns, that accepts the examples and refuses what zod refuses', async () => {
  const crds = await installObjects({ ...OPTS, part: 'crds' });
  assert.deepEqual(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    crds.map((c) => (c as any).spec.names.kind),
    Object.keys(POLICY_KINDS),
  );
  assert.equal(crds.length, 5);
  const byKindName = new Map(crds.map((c) => [(c as any).spec.names.kind as string, c])); // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const c of crds) {
    validateK8s(c);
    const v = (c as any).spec.versions[0]; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(`${(c as any).spec.group}/${v.name}`, POLICY_API_VERSION); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(structuralProblems(v.schema.openAPIV3Schema), [], c.metadata.name);
    const cols = v.additionalPrinterColumns as { name: string; jsonPath: string }[];
    assert.ok(
      cols.length >= 2 && cols.at(-1)?.name === 'Age',
      `${c.metadata.name}: printer columns ${cols.map((x) => x.name).join(',')}`,
    );
    // Every column points at a field the schema has.
    for (const col of cols.slice(0, -1)) {
      let node = v.schema.openAPIV3Schema as JsonSchema;
      for (const part of col.jsonPath
        .replace(/\[\*\]/g, '')
        .split('.')
        .slice(1)) {
        node = (node.items as JsonSchema | undefined) ?? node;
        node = (node.properties as Record<string, JsonSchema>)[part] as JsonSchema;
        assert.ok(node !== undefined, `${c.metadata.name}: column ${col.name}: ${col.jsonPath}`);
      }
    }
  }
  const examples = await policyExamples();
  assert.deepEqual(
    new Set(examples.map((e) => e.kind)),
    new Set(Object.keys(POLICY_KINDS)),
    'an example of every kind',
  );
  for (const e of examples) {
    const c = byKindName.get(e.kind) as K8sObject;
    assert.deepEqual(crdValidator(c)(e), [], `${e.kind} ${e.metadata.name}`);
    assert.ok(
      POLICY_KINDS[e.kind as keyof typeof POLICY_KINDS].safeParse(e).success,
      `zod too: ${e.kind} ${e.metadata.name}`,
    );
  }
  // What the API server refuses, the control plane's own checks refuse too.
  const bad: [string, unknown][] = [
    ['Server', { podSelector: {}, port: true }],
    ['Server', { podSelector: {}, port: 80, proxyProtocol: 'HTTP/3' }],
    ['Server', { port: 80 }],
    ['AuthorizationPolicy', { targetRef: { kind: 'Deployment', name: 'web' } }],
    [
      'AuthorizationPolicy',
      { targetRef: { kind: 'Server', name: 'web' }, requiredAuthenticationRefs: [{ kind: 'Secret', name: 'x' }] },
    ],
    ['MeshTLSAuthentication', { identities: ['not an id'] }],
    ['NetworkAuthentication', { networks: [{ cidr: '300.0.0.0/8' }] }],
    ['NetworkAuthentication', { networks: [] }],
    ['HTTPLocalRateLimitPolicy', { targetRef: { kind: 'Server', name: 'web' }, total: { requestsPerSecond: 0 } }],
  ];
  for (const [kind, spec] of bad) {
    const o = { apiVersion: POLICY_API_VERSION, kind, metadata: { name: 'x', namespace: 'default' }, spec };
    assert.notDeepEqual(crdValidator(byKindName.get(kind) as K8sObject)(o), [], `${kind} ${JSON.stringify(spec)}`);
    assert.ok(
      !POLICY_KINDS[kind as keyof typeof POLICY_KINDS].safeParse(o).success,
      `zod: ${kind} ${JSON.stringify(spec)}`,
    );
  }
});

// ---- the trust bundle and its rotation ---------------------------------------------------------------

const bundleOf = (cm: K8sObject) => parseTrustBundle((cm as any).data['ca-bundle.crt'] as string); // eslint-disable-line @typescript-eslint/no-explicit-any
const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

void test('install: the trust bundle as a ConfigMap, mounted by the control plane; the proxies mount their namespace copy', async () => {
  const objs = await installObjects({ ...OPTS, trustGeneration: 7 });
  const cm = one(objs, 'ConfigMap', 'outrigger-trust-anchors');
  assert.equal(cm.metadata.namespace, 'mesh-system');
  const dec = (s: K8sObject, k: string) => Buffer.from((s as any).data[k], 'base64').toString('utf8'); // eslint-disable-line @typescript-eslint/no-explicit-any
  const anchor = dec(one(objs, 'Secret', 'outrigger-identity'), 'ca.crt');
  const b = bundleOf(cm);
  assert.equal(b.generation, 7);
  assert.deepEqual(
    b.views.map((v) => v.fingerprint),
    [fp(anchor)],
  );
  // Before the Deployment, which mounts it (a missing ConfigMap would hold its pods back).
  assert.ok(objs.indexOf(cm) < objs.indexOf(one(objs, 'Deployment')));
  const pod = one(objs, 'Deployment').spec.template.spec;
  assert.deepEqual(
    pod.volumes.find((v: { name: string }) => v.name === 'outrigger-trust-anchors'),
    { name: 'outrigger-trust-anchors', configMap: { name: 'outrigger-trust-anchors' } },
  );
  assert.ok(
    pod.containers[0].volumeMounts.some(
      (m: { name: string; mountPath: string }) =>
        m.name === 'outrigger-trust-anchors' && m.mountPath === '/var/run/outrigger/trust',
    ),
  );
  // Without a generation, the time: a later install never goes below an earlier rotation's stage.
  const later = bundleOf(one(await installObjects(OPTS), 'ConfigMap')).generation;
  assert.ok(Math.abs(later - Date.now() / 1000) < 60, String(later));
});

void test('trust rotation: three stages, as the local rotation goes; each validates; inputs checked', async () => {
  const { rotationStageObjects } = await import('../src/kube/trust.js');
  const old = await MeshCa.generatePems('example.org');
  const next = await MeshCa.generatePems('example.org');
  const base = {
    namespace: 'mesh-system',
    trustDomain: 'example.org',
    oldAnchorPem: old.trustAnchorPem,
    newAnchorPem: next.trustAnchorPem,
  };
  // 1: the bundle of both, the issuer untouched (no Secret).
  const s1 = await rotationStageObjects({ ...base, stage: 1, generation: 101 });
  for (const o of s1) validateK8s(o);
  assert.deepEqual(
    s1.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`),
    ['ConfigMap/mesh-system/outrigger-trust-anchors'],
  );
  const b1 = bundleOf(s1[0] as K8sObject);
  assert.deepEqual(
    b1.views.map((v) => v.fingerprint),
    [fp(old.trustAnchorPem), fp(next.trustAnchorPem)],
  );
  assert.equal(b1.generation, 101);
  assert.equal(b1.issuer, undefined);
  // 2: the Secret with the new issuer (given), then the bundle (same anchors) naming it, a new generation.
  const s2 = await rotationStageObjects({
    ...base,
    stage: 2,
    generation: 102,
    newIssuer: { certPem: next.issuerCertPem, keyPem: next.issuerKeyPem },
  });
  for (const o of s2) validateK8s(o);
  assert.deepEqual(
    s2.map((o) => `${o.kind}/${o.metadata.name}`),
    ['Secret/outrigger-identity', 'ConfigMap/outrigger-trust-anchors'],
  );
  const dec = (s: K8sObject, k: string) => Buffer.from((s as any).data[k], 'base64').toString('utf8'); // eslint-disable-line @typescript-eslint/no-explicit-any
  const secret = s2[0] as K8sObject;
  assert.equal(dec(secret, 'ca.crt'), next.trustAnchorPem);
  assert.equal(dec(secret, 'issuer.crt'), next.issuerCertPem);
  const b2 = bundleOf(s2[1] as K8sObject);
  assert.equal(b2.generation, 102);
  assert.equal(b2.issuer, fp(next.issuerCertPem));
  assert.equal(b2.anchors.length, 2);
  // Or signed here with the new anchor's key: the key is not in any object rendered.
  const signed = await rotationStageObjects({
    ...base,
    stage: 2,
    generation: 102,
    newAnchorKeyPem: next.trustAnchorKeyPem,
  });
  const text = JSON.stringify(signed);
  assert.ok(!text.includes(Buffer.from(next.trustAnchorKeyPem).toString('base64')));
  assert.ok(!text.includes(next.trustAnchorKeyPem.split('\n')[1] as string));
  const issuer = dec(signed[0] as K8sObject, 'issuer.crt');
  assert.ok(new X509Certificate(issuer).verify(new X509Certificate(next.trustAnchorPem).publicKey));
  assert.equal(bundleOf(signed[1] as K8sObject).issuer, fp(issuer));
  // 3: the new anchor alone.
  const s3 = await rotationStageObjects({ ...base, stage: 3, generation: 103 });
  assert.deepEqual(
    bundleOf(s3[0] as K8sObject).views.map((v) => v.fingerprint),
    [fp(next.trustAnchorPem)],
  );
  // Bad inputs, each named.
  await assert.rejects(
    rotationStageObjects({ ...base, stage: 2, generation: 102 }),
    /stage 2 needs the new issuer \(certificate and key\) or the new anchor's key/,
  );
  await assert.rejects(
    rotationStageObjects({
      ...base,
      stage: 2,
      generation: 102,
      newIssuer: { certPem: old.issuerCertPem, keyPem: old.issuerKeyPem },
    }),
    /issuer certificate \(the new issuer\): is not signed by the trust anchor \(the new anchor\)/,
  );
  await assert.rejects(
    rotationStageObjects({ ...base, stage: 1, generation: 0, newAnchorPem: old.trustAnchorPem }),
    /the old and the new anchor are the same certificate; the generation must be a whole number from 1, got 0/,
  );
  await assert.rejects(
    rotationStageObjects({ ...base, stage: 1, generation: 5, newAnchorPem: next.issuerCertPem }),
    /the new anchor: is not self-signed/,
  );
  await assert.rejects(
    rotationStageObjects({ ...base, stage: 3, generation: 5, oldAnchorPem: 'nope' }),
    /the old anchor: it holds no PEM certificate/,
  );
});

void test('install trust-rotation: the command prints a stage, says what to wait for and what is next, and names bad input', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../../bin/outrigger.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-rotation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const old = await MeshCa.generatePems('cluster.local');
  const next = await MeshCa.generatePems('cluster.local');
  writeFileSync(join(dir, 'old.crt'), old.trustAnchorPem);
  writeFileSync(join(dir, 'new.crt'), next.trustAnchorPem);
  writeFileSync(join(dir, 'new.key'), next.trustAnchorKeyPem, { mode: 0o600 });
  const run = (...args: string[]) =>
    spawnSync(
      process.execPath,
      [bin, 'install', 'trust-rotation', '--old-anchor', 'old.crt', '--new-anchor', 'new.crt', ...args],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
  const one = run('--stage', '2', '--new-anchor-key', 'new.key', '-n', 'mesh', '--generation', '12', '-o', 'json');
  assert.equal(one.status, 0, one.stderr);
  const objs = (JSON.parse(one.stdout) as { items: K8sObject[] }).items;
  assert.deepEqual(
    objs.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`),
    ['Secret/mesh/outrigger-identity', 'ConfigMap/mesh/outrigger-trust-anchors'],
  );
  for (const o of objs) validateK8s(o);
  assert.equal(bundleOf(objs[1] as K8sObject).generation, 12);
  assert.ok(!one.stdout.includes(next.trustAnchorKeyPem.split('\n')[1] as string), 'the anchor key is not printed');
  assert.match(one.stderr, /^stage 2 of 3 \(generation 12\): switches the identity Secret to the new issuer/);
  assert.match(
    one.stderr,
    /Then wait until every proxy holds a certificate from the new issuer .*; next, stage 3: drop the old anchor/,
  );
  const missing = run('--stage', '2');
  assert.equal(missing.status, 2);
  assert.match(
    missing.stderr,
    /stage 2 signs with the new issuer: give --new-issuer-cert and --new-issuer-key, or --new-anchor-key/,
  );
  const unreadable = run('--stage', '1', '--old-anchor', 'nope.crt');
  assert.equal(unreadable.status, 1);
  assert.match(unreadable.stderr, /--old-anchor nope\.crt: cannot read it \(ENOENT\)/);
});
