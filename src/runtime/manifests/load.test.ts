import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPortList } from '../../core/ports.js';
import { formatProblem, loadManifestFiles, ManifestError, parseManifests, type LoadOptions } from './index.js';

// Tests run from dist/; the YAML fixtures stay in the source tree.
const root = fileURLToPath(new URL('../../../../', import.meta.url));
const dir = join(root, 'src/runtime/manifests/testdata');

/** The formatted problems of loading fixture files, with paths relative to testdata/. */
async function problemsOf(files: string[], opts?: LoadOptions): Promise<string[]> {
  try {
    await loadManifestFiles(
      files.map((f) => join(dir, f)),
      opts,
    );
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    assert.equal(err.code, 'OUTR_ERR_MANIFEST');
    return err.problems.map((p) => formatProblem(p).replaceAll(`${dir}/`, ''));
  }
  assert.fail(`${files.join(', ')} loaded without problems`);
}

void test('valid manifests load into typed objects with Kubernetes defaults', async () => {
  const set = await loadManifestFiles([join(dir, 'valid/web.yaml'), join(dir, 'valid/shop.yaml')]);
  assert.deepEqual(
    set.objects.map(
      (o) =>
        `${o.kind} ${o.kind === 'Namespace' ? '' : `${o.metadata.namespace}/`}${o.metadata.name} @${o.source.document}`,
    ),
    [
      'Deployment default/web @1',
      'Service default/web @2',
      'Pod default/client @4',
      'Namespace shop @1',
      'ServiceAccount shop/db @2',
      'Pod shop/db @3',
      'Service shop/db @4',
    ],
  );
  const web = set.deployments[0];
  assert.ok(web);
  assert.equal(web.spec.replicas, 3);
  const c = web.spec.template.spec.containers[0];
  assert.ok(c);
  assert.deepEqual(c.command, ['python3', '-m', 'http.server']);
  assert.deepEqual(c.args, ['8080']);
  assert.equal(c.workingDir, '/srv');
  assert.deepEqual(c.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(c.env[1], { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
  assert.equal(c.readinessProbe?.httpGet?.port, 'http');
  assert.equal(c.readinessProbe?.periodSeconds, 2);
  assert.equal(c.readinessProbe?.failureThreshold, 3);
  assert.equal(web.spec.template.spec.restartPolicy, 'Always');
  assert.equal(web.spec.template.spec.serviceAccountName, 'default');
  assert.equal(formatPortList(web.mesh.opaquePorts ?? []), '3306-3310,5432');

  const svc = set.services.find((s) => s.metadata.namespace === 'default');
  assert.ok(svc);
  assert.deepEqual(
    svc.spec.ports.map((p) => [p.name, p.port, p.targetPort, p.appProtocol]),
    [
      ['http', 80, 'http', 'http'],
      ['admin', 9000, 9000, undefined], // targetPort defaults to port
    ],
  );
  assert.equal(svc.spec.type, 'ClusterIP');

  const client = set.pods.find((p) => p.metadata.name === 'client');
  assert.equal(client?.mesh.inject, false);
  assert.equal(client?.spec.restartPolicy, 'Never');
  const shop = set.namespaces[0];
  assert.equal(formatPortList(shop?.mesh.skipOutboundPorts ?? []), '25,587');
  assert.equal(formatPortList(set.services.find((s) => s.metadata.namespace === 'shop')?.opaquePorts ?? []), '5432');
});

void test('a port out of range names file, document, kind/name, field, value and line', async () => {
  assert.deepEqual(await problemsOf(['errors/port-range.yaml']), [
    'errors/port-range.yaml: document 2 (Service default/web): spec.ports[0].port: must be an integer from 1 to 65535, got 70000 (line 14)',
    // A number is checked as a port number (zod picks the union member of the right type).
    'errors/port-range.yaml: document 2 (Service default/web): spec.ports[0].targetPort: must be an integer from 1 to 65535, got 0 (line 15)',
  ]);
});

void test('an unknown or missing kind lists the known kinds', async () => {
  assert.deepEqual(await problemsOf(['errors/unknown-kind.yaml']), [
    'errors/unknown-kind.yaml: document 1: kind: unknown kind "Ingress"; known kinds: AuthorizationPolicy, Deployment, GRPCRoute, HTTPLocalRateLimitPolicy, HTTPRoute, MeshTLSAuthentication, Namespace, NetworkAuthentication, Pod, Server, Service, ServiceAccount (line 2)',
    'errors/unknown-kind.yaml: document 2: kind: is required; known kinds: AuthorizationPolicy, Deployment, GRPCRoute, HTTPLocalRateLimitPolicy, HTTPRoute, MeshTLSAuthentication, Namespace, NetworkAuthentication, Pod, Server, Service, ServiceAccount (line 6)',
  ]);
});

void test('unknown fields are rejected by name, with a suggestion; common metadata is accepted', async () => {
  const problems = await problemsOf(['errors/unknown-field.yaml']);
  assert.deepEqual(problems, [
    'errors/unknown-field.yaml: document 1 (Pod default/web): metadata.colour: unknown field; allowed here: name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, ownerReferences, finalizers, managedFields, generateName, selfLink (line 7)',
    // No "containerPort: is required" next to it: the suggestion already says so.
    'errors/unknown-field.yaml: document 1 (Pod default/web): spec.containers[0].ports[0].containerport: unknown field; did you mean "containerPort"? (line 14)',
    'errors/unknown-field.yaml: document 1 (Pod default/web): spec.containers[0].comand: unknown field; did you mean "command"? (line 11)',
    'errors/unknown-field.yaml: document 1 (Pod default/web): spec.nodeSelectors: unknown field; allowed here: containers, restartPolicy, serviceAccountName, terminationGracePeriodSeconds, hostname, nodeName, automountServiceAccountToken, shareProcessNamespace, securityContext, volumes (line 15)',
  ]);
});

void test('duplicates across files and within a file name where the first one is', async () => {
  assert.deepEqual(await problemsOf(['errors/dup-a.yaml', 'errors/dup-b.yaml']), [
    'errors/dup-b.yaml: document 1 (Service default/web): metadata.name: duplicate Service "default/web": first defined in errors/dup-a.yaml document 1 (line 4)',
    'errors/dup-b.yaml: document 3 (Pod default/web): metadata.name: duplicate Pod "default/web": first defined in document 2 (line 19)',
  ]);
});

void test('a container needs a command, or an image the runtime knows', async () => {
  assert.deepEqual(await problemsOf(['errors/no-command.yaml']), [
    'errors/no-command.yaml: document 1 (Pod default/nothing): spec.containers[0].command: is required: the local runtime runs a host command instead of an image (line 7)',
    'errors/no-command.yaml: document 2 (Deployment default/nginx): spec.template.spec.containers[0].command: is required: the local runtime cannot run image "nginx:1.27"; add a command (the image is then ignored) (line 19)',
    'errors/no-command.yaml: document 2 (Deployment default/nginx): spec.template.spec.containers[1].command: must not be empty: it is the program the container runs (line 23)',
  ]);
  // With nginx known, its command fills in; the other problems remain.
  const withImage = await problemsOf(['errors/no-command.yaml'], {
    images: { 'nginx:1.27': ['nginx', '-g', 'daemon off;'] },
  });
  assert.equal(withImage.length, 2);
  assert.ok(!withImage.some((p) => p.includes('nginx:1.27')));
});

void test('outrigger annotations: values, typos, and where they belong, all in one pass', async () => {
  assert.deepEqual(await problemsOf(['errors/annotations.yaml']), [
    'errors/annotations.yaml: document 1 (Namespace team): metadata.annotations["outrigger.io/inject"]: must be "enabled" or "disabled", got "yes" (line 6)',
    'errors/annotations.yaml: document 1 (Namespace team): metadata.annotations["config.outrigger.io/opaqe-ports"]: unknown outrigger annotation; did you mean "config.outrigger.io/opaque-ports"? (line 7)',
    // A schema error in this document does not hide its annotation problems.
    'errors/annotations.yaml: document 2 (Deployment team/api): spec.template.metadata.annotations["config.outrigger.io/skip-outbound-ports"]: must be a string, got 3306; quote it: "3306" (line 23)',
    'errors/annotations.yaml: document 2 (Deployment team/api): metadata.annotations["outrigger.io/inject"]: has no effect here; put it on spec.template.metadata.annotations, where it applies to the pods (line 15)',
    'errors/annotations.yaml: document 2 (Deployment team/api): spec.template.metadata.annotations["config.outrigger.io/skip-inbound-ports"]: port 70000 is out of range 1 to 65535 in "25,70000" (line 22)',
    'errors/annotations.yaml: document 2 (Deployment team/api): spec.template.metadata.annotations["config.outrigger.io/opaque-ports"]: range 3310-3306 starts after it ends in "3310-3306" (line 24)',
    'errors/annotations.yaml: document 3 (Service team/api): metadata.annotations["outrigger.io/inject"]: has no effect here; on a Service only config.outrigger.io/opaque-ports is meaningful; put the others on the pod template or the namespace (line 34)',
  ]);
});

void test('wrong types: YAML numbers and booleans where strings belong get a quoting hint', async () => {
  const problems = await problemsOf(['errors/types.yaml']);
  const at = 'errors/types.yaml: document 1 (Deployment default/api): ';
  assert.deepEqual(problems, [
    `${at}metadata.labels.enabled: must be a string, got boolean true; quote it: "true" (line 6)`,
    `${at}spec.replicas: must be an integer of 0 or more, got "3" (line 8)`,
    `${at}spec.template.spec.containers[0].name: must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit, got "API" (line 16)`,
    `${at}spec.template.spec.containers[0].command[2]: must be a string, got 8080; quote it: "8080" (line 17)`,
    `${at}spec.template.spec.containers[0].env[0].value: must be a string, got 8080; quote it: "8080" (line 20)`,
    `${at}spec.template.spec.containers[0].readinessProbe.httpGet.port: must be a port number from 1 to 65535 or a port name, got boolean true (line 22)`,
    `${at}spec.template.spec.restartPolicy: must be one of "Always", "OnFailure", "Never", got "Sometimes" (line 14)`,
  ]);
});

void test("YAML syntax errors are reported beside the other documents' problems", async () => {
  assert.deepEqual(await problemsOf(['errors/yaml-syntax.yaml']), [
    `errors/yaml-syntax.yaml: document 1 (Service default/Web): metadata.name: must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, got "Web" (line 4)`,
    'errors/yaml-syntax.yaml: document 2: invalid YAML: Map keys must be unique (line 12)',
    'errors/yaml-syntax.yaml: document 2: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] (line 14)',
  ]);
});

void test('rules across fields and documents: selectors, probes, names, namespaces, service accounts', async () => {
  const d = 'errors/semantic.yaml: document 1 (Deployment missing/api): ';
  const s = 'errors/semantic.yaml: document 2 (Service default/api): ';
  assert.deepEqual(await problemsOf(['errors/semantic.yaml']), [
    `${d}spec.selector: does not match the template's labels (spec.template.metadata.labels: app=apx) (line 7)`,
    `${d}spec.template.spec.restartPolicy: must be "Always" in a Deployment, got "Never" (line 13)`,
    `${d}spec.template.spec.containers[0].readinessProbe: needs exactly one of httpGet, tcpSocket, exec, got httpGet and tcpSocket (line 19)`,
    `${d}spec.template.spec.containers[0].readinessProbe.httpGet.port: container "api" has no port named "http" (its named ports: web) (line 20)`,
    `${d}spec.template.spec.containers[1].name: duplicate container name "api" (also containers[0]) (line 22)`,
    `${d}spec.template.spec.containers[1].ports[0].name: duplicate port name "web" in the pod (also in container "api") (line 24)`,
    `${d}metadata.namespace: namespace "missing" does not exist: add a Namespace document for it (line 5)`,
    `${d}spec.template.spec.serviceAccountName: service account "robot" does not exist in namespace "missing": add a ServiceAccount document (only "default" exists implicitly) (line 14)`,
    `${s}spec.ports[0].name: is required when a Service has more than one port (line 33)`,
    `${s}spec.ports[1].port: duplicate port 80/TCP (also ports[0]) (line 34)`,
  ]);
  // A namespace the running mesh already has counts as existing.
  const known = await problemsOf(['errors/semantic.yaml'], { knownNamespaces: ['default', 'missing'] });
  assert.ok(!known.some((p) => p.includes('does not exist: add a Namespace')));
});

void test('apiVersion must match the kind; a document must be a mapping', async () => {
  assert.deepEqual(await problemsOf(['errors/apiversion.yaml']), [
    'errors/apiversion.yaml: document 1 (Deployment default/api): apiVersion: must be "apps/v1" for Deployment, got "v1" (line 1)',
    'errors/apiversion.yaml: document 2: must be a mapping with apiVersion, kind and metadata, got a list (line 12)',
  ]);
});

void test('a missing or non-string apiVersion is one problem, not one from the loader and one from the schema', () => {
  const problems = (text: string) => {
    try {
      parseManifests([{ file: 'pod.yaml', text }]);
    } catch (e) {
      if (e instanceof ManifestError) return e.problems.map(formatProblem);
      throw e;
    }
    return [];
  };
  const pod = 'metadata: {name: web}\nspec:\n  containers: [{name: app, command: [sleep, "1"]}]\n';
  assert.deepEqual(problems(`kind: Pod\n${pod}`), [
    'pod.yaml: document 1 (Pod default/web): apiVersion: is required: Pod is "v1" (line 1)',
  ]);
  assert.deepEqual(problems(`apiVersion: 1\nkind: Pod\n${pod}`), [
    'pod.yaml: document 1 (Pod default/web): apiVersion: must be "v1" for Pod, got 1 (line 1)',
  ]);
  const server = 'metadata: {name: web}\nspec: {podSelector: {}, port: 80}\n';
  assert.deepEqual(problems(`kind: Server\n${server}`), [
    'pod.yaml: document 1 (Server default/web): apiVersion: is required: Server is "policy.outrigger.io/v1beta1" (line 1)',
  ]);
});

void test('an unknown field of a policy kind lists the fields allowed there, as other kinds do', () => {
  const text = `apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  port: 80
  containers: []
`;
  try {
    parseManifests([{ file: 'server.yaml', text }]);
    assert.fail('expected a ManifestError');
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    assert.deepEqual(e.problems.map(formatProblem), [
      'server.yaml: document 1 (Server default/web): spec.containers: unknown field; ' +
        'allowed here: podSelector, port, proxyProtocol (line 7)',
    ]);
  }
});

void test('every file is read and checked before failing; an unreadable file is one more problem', async () => {
  const problems = await problemsOf(['does-not-exist.yaml', 'errors/port-range.yaml', 'errors/unknown-kind.yaml']);
  assert.equal(problems[0], 'does-not-exist.yaml: cannot read: no such file');
  assert.equal(problems.length, 5);
  assert.ok(problems[1]?.startsWith('errors/port-range.yaml'));
  assert.ok(problems[4]?.startsWith('errors/unknown-kind.yaml'));
});

void test('the error message lists every problem, one per line', () => {
  const err = (() => {
    try {
      parseManifests([
        { file: 'a.yaml', text: 'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n' },
      ]);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof ManifestError);
  assert.equal(
    err.message,
    '1 problem in manifests:\n  a.yaml: document 1 (Pod default/x): spec.containers: must have at least 1 item (line 4)',
  );
});

void test('an empty file and empty documents load as nothing', () => {
  const set = parseManifests([
    { file: 'empty.yaml', text: '' },
    { file: 'seps.yaml', text: '---\n---\n# only a comment\n' },
  ]);
  assert.equal(set.objects.length, 0);
});
