import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Edge, ObserveSnapshot, StatRow } from '../observe/stats.js';
import { parseRef, parseWindow } from './observe-common.js';
import { routeRows, servicesOf } from './routes.js';
import { statRows } from './stat.js';

const g = {
  requests: 10,
  rps: 1,
  successRate: 1,
  p50: 1,
  p95: 2,
  p99: 3,
  tcpConnections: 0,
  tcpBytesPerSec: 0,
  retryRps: 0,
};
const row = (kind: StatRow['kind'], name: string, namespace = 'default'): StatRow => ({
  kind,
  namespace,
  name,
  meshed: 1,
  pods: 1,
  ...g,
});
const edge = (from: string, to: string, toKind: 'deploy' | 'svc', rps: number): Edge => ({
  from: { kind: 'deploy', namespace: 'default', name: from },
  to: { kind: toKind, namespace: 'default', name: to },
  ...g,
  rps,
});

const snap: ObserveSnapshot = {
  at: 0,
  windowSec: 60,
  spanSec: 60,
  scrapeIntervalSec: 3,
  workloads: [
    row('deploy', 'web'),
    row('deploy', 'client'),
    row('deploy', 'api'),
    row('deploy', 'web', 'other'),
    row('pod', 'debug'),
  ],
  pods: [row('pod', 'web-0'), row('pod', 'debug')],
  services: [row('svc', 'web'), row('svc', 'api')],
  serviceEdges: [edge('client', 'web', 'svc', 5), edge('client', 'api', 'svc', 2), edge('web', 'api', 'svc', 1)],
  edges: [edge('client', 'web', 'deploy', 5), edge('client', 'api', 'deploy', 2), edge('web', 'api', 'deploy', 1)],
  routes: [
    {
      namespace: 'default',
      route: 'default/web',
      kind: 'HTTPRoute',
      service: 'web',
      ...g,
      backends: [{ service: 'web-v2', weight: 0.1, share: 0.1, rps: 0.1, estimated: true }],
    },
  ],
  scrapeErrors: {},
};

void test('stat rows: by kind and namespace, --from (what it calls) and --to (who calls it)', () => {
  assert.deepEqual(
    (statRows(snap, { kind: 'deploy', namespace: 'default' }) as StatRow[]).map((r) => r.name),
    ['api', 'client', 'web'],
  );
  assert.equal((statRows(snap, { kind: 'deploy' }) as StatRow[]).length, 4, '-A: every namespace, Deployments only');
  const from = statRows(snap, {
    kind: 'svc',
    namespace: 'default',
    from: { kind: 'deploy', namespace: 'default', name: 'client' },
  }) as StatRow[];
  assert.deepEqual(
    from.map((r) => [r.name, r.rps]),
    [
      ['api', 2],
      ['web', 5],
    ],
  );
  const to = statRows(snap, {
    kind: 'deploy',
    namespace: 'default',
    to: { kind: 'svc', namespace: 'default', name: 'api' },
  }) as StatRow[];
  assert.deepEqual(
    to.map((r) => [r.name, r.rps]),
    [
      ['client', 2],
      ['web', 1],
    ],
  );
  assert.equal(
    typeof statRows(snap, { kind: 'pod', from: { kind: 'deploy', namespace: 'default', name: 'client' } }),
    'string',
  );
});

void test('routes of a resource: on its Services, or sending to it as a backend', () => {
  const status = {
    pods: [{ namespace: 'default', name: 'web-v2-0', deployment: 'web-v2', labels: { app: 'web', version: 'v2' } }],
    services: [
      { namespace: 'default', name: 'web', selector: { app: 'web' } },
      { namespace: 'default', name: 'web-v2', selector: { app: 'web', version: 'v2' } },
    ],
  } as unknown as Parameters<typeof servicesOf>[0];
  assert.deepEqual(servicesOf(status, { kind: 'deploy', namespace: 'default', name: 'web-v2' }), ['web', 'web-v2']);
  assert.equal(routeRows(snap, status, { kind: 'deploy', namespace: 'default', name: 'web-v2' }).length, 1);
  assert.equal(routeRows(snap, status, { kind: 'svc', namespace: 'default', name: 'api' }).length, 0);
});

void test('-t windows and resource references', () => {
  assert.equal(parseWindow('30s'), 30);
  assert.equal(parseWindow('1m'), 60);
  assert.equal(parseWindow('90'), 90);
  assert.match(String(parseWindow('1h')), /keeps 15 minutes/);
  assert.match(String(parseWindow('soon')), /write a duration/);
  assert.deepEqual(parseRef('deploy/web', 'prod'), { kind: 'deploy', namespace: 'prod', name: 'web' });
  assert.deepEqual(parseRef('svc/api', 'default'), { kind: 'svc', namespace: 'default', name: 'api' });
  assert.match(String(parseRef('web', 'default')), /write deploy\/NAME/);
});
