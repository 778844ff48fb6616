import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InFlightLimit, Slot } from './limit.js';

void test('limit: slots up to maxInFlight, then a FIFO queue up to maxQueued, then refusals', () => {
  const l = new InFlightLimit({ maxInFlight: 2, maxQueued: 2 });
  const order: string[] = [];
  assert.equal(
    l.acquire(() => order.push('a')),
    Slot.Now,
  );
  assert.equal(
    l.acquire(() => order.push('b')),
    Slot.Now,
  );
  const c = () => order.push('c');
  const d = () => order.push('d');
  assert.equal(l.acquire(c), Slot.Queued);
  assert.equal(l.acquire(d), Slot.Queued);
  assert.equal(
    l.acquire(() => order.push('e')),
    Slot.Full,
  );
  assert.deepEqual([l.inFlight, l.queued, l.queuedTotal, l.fullTotal], [2, 2, 2, 1]);
  l.release(); // a slot passes to c
  assert.deepEqual(order, ['c']);
  assert.deepEqual([l.inFlight, l.queued], [2, 1]);
  l.cancel(d); // d's client left
  l.release();
  l.release();
  assert.deepEqual(order, ['c'], 'a cancelled waiter is skipped');
  assert.deepEqual([l.inFlight, l.queued], [0, 0]);
  // Waiters first: a newcomer does not jump the queue.
  assert.equal(
    l.acquire(() => undefined),
    Slot.Now,
  );
  assert.equal(
    l.acquire(() => undefined),
    Slot.Now,
  );
  assert.equal(
    l.acquire(() => order.push('f')),
    Slot.Queued,
  );
  l.release();
  assert.equal(
    l.acquire(() => undefined),
    Slot.Queued,
    'the slot went to f, so the newcomer waits',
  );
  assert.deepEqual(order, ['c', 'f']);
});
