// `get`'s tables and pod lookup, without a mesh: what the columns say for a meshed pod.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MeshStatus, PodView } from '../runtime/mesh.js';
import { podRows, table } from './get.js';
import { findPod } from './mesh-common.js';

const container = (name: string, ready: boolean, restarts = 0) => ({
  name,
  ready,
  restarts,
  started: true,
  finished: false,
  logFile: `/x/${name}.log`,
  state: { state: 'running' as const, startedAt: new Date(0) },
});

const pod = (name: string, ready: boolean, deployment?: string): PodView =>
  ({
    namespace: 'default',
    name,
    phase: 'Running',
    ready,
    restarts: 1,
    meshed: true,
    ip: '10.244.0.2',
    netns: `outr-outr0-default.${name}`,
    containers: [container('outrigger-proxy', true, 1), container('http', ready)],
    labels: {},
    appContainers: ['http'],
    ...(deployment !== undefined ? { deployment } : {}),
  }) as unknown as PodView;

void test('get pods: READY counts app containers, RESTARTS the proxy too, MESHED yes', () => {
  const out = table(podRows([pod('web-0', true), pod('web-1', false)], false));
  assert.equal(
    out,
    [
      'NAME    READY   STATUS    RESTARTS   IP           MESHED',
      'web-0   1/1     Running   1          10.244.0.2   yes',
      'web-1   0/1     Running   1          10.244.0.2   yes',
      '',
    ].join('\n'),
  );
});

void test('findPod: by name, deploy/NAME picks a ready pod, and a clear message otherwise', () => {
  const status = {
    phase: 'Ready',
    progress: [],
    services: [],
    deployments: [],
    pods: [pod('web-0', false, 'web'), pod('web-1', true, 'web')],
  } as MeshStatus;
  assert.equal((findPod(status, 'default', 'web-0') as PodView).name, 'web-0');
  assert.equal((findPod(status, 'default', 'deploy/web') as PodView).name, 'web-1');
  assert.equal(findPod(status, 'default', 'deploy/api'), 'no deployment default/api');
  assert.equal(findPod(status, 'shop', 'web-0'), 'no pod shop/web-0 (it is in another namespace: use -n)');
});
