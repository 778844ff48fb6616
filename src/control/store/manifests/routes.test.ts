import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifestFiles } from './manifests/index.js';
import { routeEntries } from './routes.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

void test('routes for the store: defaults applied, durations in ms, sectionName resolved, sorted', async () => {
  const set = await loadManifestFiles([join(root, 'src/runtime/manifests/testdata/valid/routes.yaml')]);
  const [greeter, split] = routeEntries(set);
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
  assert.deepEqual(rest?.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }], "Gateway API's default match");
  assert.deepEqual(rest?.backends, [
    { name: 'web', port: 80, weight: 90 },
    { name: 'web-canary', port: 80, weight: 10 },
  ]);
  assert.equal(rest?.retry?.attempts, 2, 'the annotation applies to every rule');
});
