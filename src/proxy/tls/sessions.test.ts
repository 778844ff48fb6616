import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from './alpn.js';
import { SessionCache, sessionKey } from './sessions.js';

const API = 'spiffe://cluster.local/ns/default/sa/api' as SpiffeId;
const DB = 'spiffe://cluster.local/ns/default/sa/db' as SpiffeId;
const ticket = (n: number) => Buffer.from([n]);
const taken = (c: SessionCache, key: string) => c.offer(key)?.session[0];

void test('sessions: every part of the key tells sessions apart', () => {
  const key = sessionKey(1, API, MESH_ALPN.h2, '10.0.0.1:4143');
  const others = [
    sessionKey(2, API, MESH_ALPN.h2, '10.0.0.1:4143'),
    sessionKey(1, DB, MESH_ALPN.h2, '10.0.0.1:4143'),
    sessionKey(1, API, MESH_ALPN.http1, '10.0.0.1:4143'),
    sessionKey(1, API, MESH_ALPN.h2, '10.0.0.2:4143'),
  ];
  assert.equal(new Set([key, ...others]).size, 5);
  const c = new SessionCache();
  c.put(key, ticket(1), Date.now() + 60_000);
  for (const k of others) assert.equal(c.offer(k), undefined);
  assert.equal(taken(c, key), 1);
});

void test('sessions: the newest ticket is offered, and again to the next connection while it lives', () => {
  const c = new SessionCache();
  c.put('k', ticket(1), Date.now() + 60_000);
  c.put('k', ticket(2), Date.now() + 60_000);
  assert.equal(c.size, 2);
  assert.equal(taken(c, 'k'), 2);
  assert.equal(taken(c, 'k'), 2);
  assert.equal(c.size, 2);
});

void test('sessions: expired tickets are never returned, nor kept', () => {
  let now = 1_000_000;
  const c = new SessionCache({ now: () => now });
  c.put('k', ticket(1), now + 100);
  c.put('k', ticket(2), now + 50);
  c.put('k', ticket(3), now); // already expired
  assert.equal(c.size, 2);
  now += 60;
  assert.equal(taken(c, 'k'), 1, 'the newest one has expired: the next one is returned');
  assert.equal(c.size, 1, 'and the expired one is gone');
  now += 100;
  c.put('k', ticket(4), now + 10);
  c.put('j', ticket(5), now + 10);
  now += 10;
  assert.equal(c.offer('k'), undefined);
  assert.equal(c.offer('j'), undefined);
  assert.equal(c.size, 0);
});

void test('sessions: bounded per key and in all, the least recently used key losing first', () => {
  const c = new SessionCache({ maxTickets: 4, maxPerKey: 2 });
  const later = Date.now() + 60_000;
  c.put('a', ticket(1), later);
  c.put('a', ticket(2), later);
  c.put('a', ticket(3), later);
  assert.equal(c.size, 2, 'two per key: the oldest of "a" went');
  c.put('b', ticket(4), later);
  c.put('c', ticket(5), later);
  assert.equal(c.size, 4);
  c.put('d', ticket(6), later); // over 4: "a" is the least recently used key, it loses its oldest
  assert.equal(c.size, 4);
  assert.equal(taken(c, 'a'), 3);
  c.drop('a');
  c.put('e', ticket(7), later); // "a" is gone; "b" is now the least recently used
  c.put('e', ticket(8), later);
  assert.equal(c.offer('b'), undefined);
  assert.equal(taken(c, 'c'), 5);
  assert.equal(taken(c, 'e'), 8);
});

void test('sessions: drop forgets a key, clear forgets all', () => {
  const c = new SessionCache();
  const later = Date.now() + 60_000;
  c.put('a', ticket(1), later);
  c.put('a', ticket(2), later);
  c.put('b', ticket(3), later);
  c.drop('a');
  assert.equal(c.size, 1);
  assert.equal(c.offer('a'), undefined);
  c.clear();
  assert.equal(c.size, 0);
  assert.equal(c.offer('b'), undefined);
});
