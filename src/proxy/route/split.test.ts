import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededRandom } from '../balance/contract.js';
import { chooseBackend, compileSplit, type BackendChoice } from './split.js';

const b = (name: string): BackendChoice => ({
  service: `${name}.default.svc.cluster.local:80`,
  exists: true,
  endpoints: [],
});
const [stable, canary, off] = [b('stable'), b('canary'), b('off')] as [BackendChoice, BackendChoice, BackendChoice];

void test('weights split the traffic: 90/10 over 10,000 seeded choices lands within 1%', () => {
  const s = compileSplit([
    { backend: stable, weight: 90 },
    { backend: canary, weight: 10 },
    { backend: off, weight: 0 },
  ]);
  const random = seededRandom(7);
  const counts = new Map<string, number>();
  for (let i = 0; i < 10_000; i++) {
    const c = chooseBackend(s, random);
    counts.set(c?.service ?? '', (counts.get(c?.service ?? '') ?? 0) + 1);
  }
  const share = (x: BackendChoice) => (counts.get(x.service) ?? 0) / 10_000;
  assert.ok(Math.abs(share(stable) - 0.9) < 0.01, String(share(stable)));
  assert.ok(Math.abs(share(canary) - 0.1) < 0.01, String(share(canary)));
  assert.equal(share(off), 0, 'a weight of 0 gets nothing');
});

void test('the boundaries of the injected random number decide exactly', () => {
  const s = compileSplit([
    { backend: stable, weight: 3 },
    { backend: canary, weight: 1 },
  ]);
  assert.equal(
    chooseBackend(s, () => 0),
    stable,
  );
  assert.equal(
    chooseBackend(s, () => 0.7499),
    stable,
  );
  assert.equal(
    chooseBackend(s, () => 0.75),
    canary,
  );
  assert.equal(
    chooseBackend(s, () => 0.9999999),
    canary,
  );
});

void test('one backend costs no random number; none, or all weights 0, is undefined (answer 500)', () => {
  let calls = 0;
  const counting = () => (calls++, 0.5);
  assert.equal(chooseBackend(compileSplit([{ backend: stable, weight: 5 }]), counting), stable);
  assert.equal(calls, 0);
  assert.equal(chooseBackend(compileSplit([]), counting), undefined);
  assert.equal(chooseBackend(compileSplit([{ backend: stable, weight: 0 }]), counting), undefined);
});
