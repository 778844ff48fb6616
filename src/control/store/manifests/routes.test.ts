import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { routeEntriesFrom, type ApiObject } from '../kubernetes/convert.js';

/** The runtime's route fixtures, as API objects (the control plane reads no manifest files itself). */
const FIXTURE = new URL('../../../../../src/runtime/manifests/testdata/valid/routes.yaml', import.meta.url);

/** Fixture objects of one kind, in the default namespace as the API server would give them. */
async function objects(kind: string): Promise<ApiObject[]> {
  const docs = parseAllDocuments(await readFile(FIXTURE, 'utf8')).map((d) => d.toJS() as ApiObject);
  return docs.filter((d) => d.kind === kind).map((d) => ({ ...d, metadata: { namespace: 'default', ...d.metadata } }));
}

void test('routes for the store: defaults applied, durations in ms, sectionName resolved, sorted', async () => {
  const { routes, problems } = routeEntriesFrom(
    await objects('HTTPRoute'),
    await objects('GRPCRoute'),
    await objects('Service'),
  );
  assert.deepEqual([...problems], []);
  const [greeter, split] = routes;
  assert.equal(greeter?.name, 'greeter');
  assert.deepEqual(greeter?.parents, [{ name: 'greeter', port: 50051 }]);
  assert.deepEqual(greeter?.rules[0]?.matches[1], {
    headers: [{ type: 'Exact', name: 'x-tenant', value: 'blue' }],
    queryParams: [],
    grpcMethod: { type: 'RegularExpression', method: 'Say.*' },
  });
  assert.deepEqual(greeter?.rules[0]?.retry?.grpcCodes, [14, 4]);
  assert.equal(split?.kind, 'HTTPRoute');
  const [canary, rest] = split?.rules ?? [];
  assert.equal(canary?.requestTimeoutMs, 10_000);
  assert.equal(canary?.backendRequestTimeoutMs, 500);
  assert.deepEqual(canary?.filters, [
    { type: 'RequestHeaderModifier', set: [{ name: 'x-route', value: 'canary' }], add: [], remove: ['x-debug'] },
    { type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/v2' } },
  ]);
  assert.deepEqual(
    rest?.matches,
    [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
    "Gateway API's default match",
  );
  assert.deepEqual(rest?.backends, [
    { name: 'web', port: 80, weight: 90 },
    { name: 'web-canary', port: 80, weight: 10 },
  ]);
  assert.equal(rest?.retry?.attempts, 2, 'the annotation applies to every rule');
});
