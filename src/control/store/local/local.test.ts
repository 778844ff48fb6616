import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storeContract, sampleContent } from '../contract.js';
import { LocalStore } from './local.js';

storeContract('LocalStore', () => {
  const store = new LocalStore();
  return { store, set: (c) => void store.replace(c), close: () => {} };
});

void test('LocalStore: the caller may change its objects afterwards; readers cannot change snapshots', () => {
  const store = new LocalStore();
  const content = sampleContent();
  store.replace(content);
  content.pods.length = 0;
  assert.equal(store.snapshot().pods.length, 3);
  assert.throws(() => (store.snapshot().pods as unknown[]).push(1), TypeError);
  assert.throws(() => {
    (store.snapshot().services[0] as { name: string }).name = 'x';
  }, TypeError);
});

void test('LocalStore: every subscriber is called even when one throws; the error reaches replace', () => {
  const store = new LocalStore();
  const seen: number[] = [];
  store.subscribe(() => {
    throw new Error('subscriber bug');
  });
  store.subscribe((s) => seen.push(s.version));
  assert.throws(() => store.replace(sampleContent()), /subscriber bug/);
  assert.deepEqual(seen, [1]);
  assert.equal(store.snapshot().version, 1);
});

void test('LocalStore: a subscriber may unsubscribe while being notified', () => {
  const store = new LocalStore();
  let calls = 0;
  const stop = store.subscribe(() => {
    calls++;
    stop();
  });
  store.replace(sampleContent());
  store.replace(sampleContent());
  assert.equal(calls, 1);
});
