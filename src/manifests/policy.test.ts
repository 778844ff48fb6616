import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { POLICY_KINDS } from './policy.js';
import {
  formatProblem,
  loadManifestFiles,
  ManifestError,
  parseManifests,
  planPods,
} from '../runtime/manifests/index.js';
import { policyEntries } from '../control/store/manifests/policy.js';
import { routeEntries } from '../control/store/manifests/routes.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function problemsOf(text: string): string[] {
  try {
    parseManifests([{ file: 'p.yaml', text }]);
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    return err.problems.map((p) => formatProblem({ ...p, line: undefined }));
  }
  return [];
}

const doc = (kind: string, name: string, spec: string) =>
  `apiVersion: policy.outrigger.io/v1beta1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec:\n${spec}\n---\n`;
const SERVER = doc('Server', 'web', '  podSelector: {matchLabels: {app: web}}\n  port: 8080');

void test('examples/policy.yaml loads, and its store entries are normalised', async () => {
  const set = await loadManifestFiles([join(root, 'examples/policy.yaml')]);
  assert.deepEqual(
    (set.policies ?? []).map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`),
    [
      'Server shop/api-http',
      'AuthorizationPolicy shop/public-to-all',
      'MeshTLSAuthentication shop/ops',
      'AuthorizationPolicy shop/admin-to-ops',
      'HTTPLocalRateLimitPolicy shop/api',
    ],
  );
  const p = policyEntries(set);
  assert.deepEqual(p.servers[0], {
    namespace: 'shop',
    name: 'api-http',
    podSelector: { matchLabels: { app: 'api' }, matchExpressions: [] },
    port: 'http',
    proxyProtocol: 'HTTP/1',
  });
  assert.deepEqual(p.authorizationPolicies.find((a) => a.name === 'admin-to-ops')?.authentications, [
    { kind: 'MeshTLSAuthentication', namespace: 'shop', name: 'ops' },
  ]);
  assert.deepEqual(p.meshTLSAuthentications[0]?.identityRefs, [
    { kind: 'ServiceAccount', namespace: 'shop', name: 'ops' },
  ]);
  assert.deepEqual(p.rateLimits[0], {
    namespace: 'shop',
    name: 'api',
    server: 'api-http',
    total: 200,
    identity: 20,
    overrides: [{ requestsPerSecond: 50, serviceAccounts: [{ namespace: 'shop', name: 'ops' }] }],
  });
  // Inbound routes attach to the Server, not to a Service.
  assert.deepEqual(
    routeEntries(set).map((r) => [r.name, r.parents]),
    [
      ['api-admin', [{ name: 'api-http', kind: 'Server' }]],
      ['api-public', [{ name: 'api-http', kind: 'Server' }]],
    ],
  );
  // The namespace's default reaches its pods.
  assert.equal(planPods(set).find((p) => p.name === 'client')?.mesh.defaultInboundPolicy, 'all-authenticated');
});

void test('every problem names the field: references, networks, kinds and values', () => {
  const problems = problemsOf(
    SERVER +
      doc(
        'AuthorizationPolicy',
        'a',
        '  targetRef: {kind: Server, name: nope}\n  requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: missing}]',
      ) +
      doc('AuthorizationPolicy', 'b', '  targetRef: {group: policy.outrigger.io, kind: Namespace, name: other}') +
      doc('NetworkAuthentication', 'n', '  networks: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]') +
      doc('MeshTLSAuthentication', 'm', '  identities: ["spiffe://cluster.local/ns/a b"]') +
      doc('HTTPLocalRateLimitPolicy', 'r', '  targetRef: {kind: Server, name: web}\n  total: {requestsPerSecond: 0}') +
      doc('Server', 'bad', '  podSelector: {}\n  port: 8080\n  proxyProtocol: HTTP/3') +
      'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{group: policy.outrigger.io, kind: Server, name: ghost, port: 80}]\n---\n' +
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {config.outrigger.io/default-inbound-policy: nobody}}\nspec:\n  containers: [{name: c, command: [x]}]\n---\n' +
      doc('NetworkAuthentication', 'n2', '  networks: [{cidr: 300.1.1.1/8}]'),
  );
  const want = [
    /document 2 .*spec\.targetRef\.name: Server "default\/nope" does not exist/,
    /document 2 .*spec\.requiredAuthenticationRefs\[0\]\.name: MeshTLSAuthentication "default\/missing" does not exist/,
    /document 3 .*spec\.targetRef\.name: must be the policy's own namespace "default", got "other"/,
    /document 4 .*spec\.networks\[0\]\.except\[0\]: 192\.168\.0\.0\/16 is not inside 10\.0\.0\.0\/8/,
    /document 10 .*spec\.networks\[0\]\.cidr: must be an IPv4 CIDR/,
    /document 5 .*spec\.identities\[0\]: must be "\*" or a SPIFFE id/,
    /document 6 .*spec\.total\.requestsPerSecond: must be at least 1/,
    /document 7 .*spec\.proxyProtocol: must be one of/,
    /document 8 .*spec\.parentRefs\[0\]\.port: must not be set on a Server parent/,
    /document 8 .*spec\.parentRefs\[0\]\.name: Server "default\/ghost" does not exist/,
    /document 9 .*default-inbound-policy"\]: must be one of all-unauthenticated, all-authenticated, cluster-authenticated, deny, got "nobody"/,
  ];
  for (const re of want)
    assert.ok(
      problems.some((p) => re.test(p)),
      `${re}\nin:\n${problems.join('\n')}`,
    );
  assert.equal(problems.length, want.length, problems.join('\n'));
});

void test('a policy kind with the wrong apiVersion, and an unknown field, say so', () => {
  const problems = problemsOf(
    'apiVersion: policy.outrigger.io/v1\nkind: Server\nmetadata: {name: s}\nspec:\n  podSelector: {}\n  port: 80\n  protocol: HTTP/1\n',
  );
  assert.ok(
    problems.some((p) => /apiVersion: must be "policy\.outrigger\.io\/v1beta1" for Server/.test(p)),
    problems.join('\n'),
  );
  assert.ok(
    problems.some((p) => /spec\.protocol: unknown field/.test(p)),
    problems.join('\n'),
  );
});

void test('every policy kind converts to JSON Schema (the Kubernetes CRDs are generated from these)', () => {
  for (const [kind, schema] of Object.entries(POLICY_KINDS)) {
    const json = z.toJSONSchema(schema, { io: 'input' }) as {
      type?: string;
      properties?: Record<string, unknown>;
      required?: string[];
    };
    assert.equal(json.type, 'object', kind);
    assert.ok(json.properties?.spec !== undefined && json.properties.metadata !== undefined, kind);
    assert.ok(json.required?.includes('spec'), kind);
  }
});
