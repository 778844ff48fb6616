// The bound on proxies starting at once: never more than the limit, first come first served, and a
// slot given back twice frees one slot only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StartSlots } from './start-slots.js';

void test('start slots: at most the limit at once, in order, a double release counted once', async () => {
  const slots = new StartSlots(2);
  const order: number[] = [];
  let running = 0;
  let most = 0;
  const gates = new Map<number, () => void>();
  const job = async (n: number) => {
    const release = await slots.acquire();
    running++;
    most = Math.max(most, running);
    order.push(n);
    await new Promise<void>((r) => gates.set(n, r));
    running--;
    release();
    release(); // twice: must not free a second slot
  };
  const all = [0, 1, 2, 3, 4].map(job);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [0, 1]);
  assert.equal(slots.queued, 3);
  gates.get(1)?.();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [0, 1, 2]);
  for (const n of [0, 2, 3, 4]) {
    gates.get(n)?.();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(all);
  assert.equal(most, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(slots.inUse, 0);
  assert.equal(slots.queued, 0);
});
