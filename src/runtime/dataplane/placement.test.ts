import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dataPlaneSettings, placePod } from './placement.js';
import { RuntimeCodes } from '../errors.js';

void test('settings: sidecar by default, per-host with 2 nodes, bad values named', () => {
  assert.deepEqual(dataPlaneSettings(undefined, undefined), { mode: 'sidecar', nodes: 2 });
  assert.deepEqual(dataPlaneSettings('per-host', undefined), { mode: 'per-host', nodes: 2 });
  assert.deepEqual(dataPlaneSettings('per-host', '3'), { mode: 'per-host', nodes: 3 });
  assert.throws(
    () => dataPlaneSettings('per-node', '0'),
    (e: Error & { code?: string }) =>
      e.code === RuntimeCodes.DATA_PLANE && /--data-plane must be/.test(e.message) && /--nodes must be/.test(e.message),
  );
  assert.throws(() => dataPlaneSettings('sidecar', '3'), /--nodes applies to --data-plane per-host only/);
  assert.throws(() => dataPlaneSettings('per-host', '1.5'), /--nodes must be a whole number/);
});

void test('placement: spec.nodeName wins when it names a node; otherwise spread evenly and stably', () => {
  const empty = new Map<string, number>();
  assert.equal(placePod({ namespace: 'a', name: 'x', nodeName: 'node-2' }, 2, new Map([['node-2', 9]])), 'node-2');
  // A name that is not one of the mesh's nodes is ignored.
  const other = placePod({ namespace: 'a', name: 'x', nodeName: 'node-7' }, 2, new Map([['node-1', 1]]));
  assert.equal(other, 'node-2');
  assert.equal(placePod({ namespace: 'a', name: 'x' }, 3, empty), placePod({ namespace: 'a', name: 'x' }, 3, empty));
  const load = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const n = placePod({ namespace: 'shop', name: `web-${i}` }, 3, load);
    load.set(n, (load.get(n) ?? 0) + 1);
  }
  assert.deepEqual([...load.values()], [4, 4, 4]);
});
