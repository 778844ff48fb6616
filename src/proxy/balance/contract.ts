// The contract every balancer keeps (peak-EWMA now, round-robin or others later), as one node:test
// suite: a balancer's test file calls `balancerContract` with its factory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toPort, type ServerAddr } from '../../core/addr.js';
import type { BalancerFactory, EndpointInfo } from './balancer.js';

/** A small deterministic PRNG (mulberry32) for tests and simulations. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An endpoint `10.244.0.<n>:8080` owned by pod `default/web-<n>`. */
export function endpointInfo(n: number, extra: Partial<EndpointInfo> = {}): EndpointInfo {
  const addr = { host: `10.244.0.${n}`, port: toPort(8080) } as ServerAddr;
  return {
    addr,
    key: `10.244.0.${n}:8080`,
    weight: 1,
    identity: `spiffe://cluster.local/ns/default/sa/web`,
    protocolHint: 'HTTP1',
    meshed: true,
    pod: `default/web-${n}`,
    ...extra,
  };
}

/** A clock the test moves by hand. */
export function manualClock(start = 1000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

export function balancerContract(name: string, make: BalancerFactory): void {
  void test(`${name}: balancer contract`, async (t) => {
    await t.test('nothing to pick from: undefined', () => {
      const b = make({ random: seededRandom(1) });
      assert.equal(b.pick(), undefined);
      b.update([endpointInfo(1)]);
      b.update([]);
      assert.equal(b.pick(), undefined);
      assert.equal(b.endpoints.length, 0);
    });

    await t.test('one endpoint: always it, with the info it was given', () => {
      const b = make({ random: seededRandom(2) });
      b.update([endpointInfo(1, { protocolHint: 'OPAQUE', identity: undefined, meshed: false })]);
      for (let i = 0; i < 10; i++) {
        const e = b.pick();
        assert.ok(e);
        assert.equal(e.key, '10.244.0.1:8080');
        assert.equal(e.addr.host, '10.244.0.1');
        assert.equal(e.protocolHint, 'OPAQUE');
        assert.equal(e.identity, undefined);
        assert.equal(e.meshed, false);
        assert.equal(e.pod, 'default/web-1');
      }
    });

    await t.test('picks only from the latest set; endpoints that remain keep their object', () => {
      const clock = manualClock();
      const b = make({ random: seededRandom(3), now: clock.now });
      b.update([endpointInfo(1), endpointInfo(2), endpointInfo(3)]);
      const kept = b.endpoints.find((e) => e.key === '10.244.0.2:8080');
      assert.ok(kept);
      const start = kept.begin();
      b.update([endpointInfo(2), endpointInfo(4), endpointInfo(5), endpointInfo(4)]);
      assert.deepEqual(b.endpoints.map((e) => e.key).sort(), ['10.244.0.2:8080', '10.244.0.4:8080', '10.244.0.5:8080']);
      const again = b.endpoints.find((e) => e.key === '10.244.0.2:8080');
      assert.equal(again, kept, 'the same Endpoint object');
      assert.equal(again?.pending, 1, 'its stats survive the update');
      kept.end(start, true);
      const seen = new Set<string>();
      for (let i = 0; i < 300; i++) {
        const e = b.pick();
        assert.ok(e);
        seen.add(e.key);
        clock.advance(1);
        e.end(e.begin(), true);
      }
      assert.deepEqual([...seen].sort(), ['10.244.0.2:8080', '10.244.0.4:8080', '10.244.0.5:8080']);
      // The same address for another pod is another endpoint.
      const start2 = kept.begin();
      b.update([endpointInfo(2, { pod: 'default/web-2-new' }), endpointInfo(4), endpointInfo(5)]);
      assert.notEqual(
        b.endpoints.find((e) => e.key === '10.244.0.2:8080'),
        kept,
      );
      // Ending work on an endpoint that was removed is harmless.
      kept.end(start2, true);
      assert.equal(kept.pending, 0);
    });

    await t.test('pending counts begin and end, never below zero', () => {
      const b = make({ random: seededRandom(4) });
      b.update([endpointInfo(1)]);
      const e = b.pick();
      assert.ok(e);
      const s1 = e.begin();
      const s2 = e.begin();
      assert.equal(e.pending, 2);
      e.end(s1, true);
      e.end(s2, false);
      e.end(s2, true);
      assert.equal(e.pending, 0);
    });

    await t.test('equal endpoints share the work', () => {
      const clock = manualClock();
      const b = make({ random: seededRandom(5), now: clock.now });
      b.update([endpointInfo(1), endpointInfo(2), endpointInfo(3)]);
      const counts = new Map<string, number>();
      for (let i = 0; i < 3000; i++) {
        const e = b.pick();
        assert.ok(e);
        counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
        const s = e.begin();
        clock.advance(1);
        e.end(s, true);
      }
      for (const [key, n] of counts) assert.ok(n > 600, `${key} got ${n} of 3000`);
      assert.equal(counts.size, 3);
    });

    await t.test('outstanding work is spread: with nothing finishing, pending counts stay close', () => {
      const b = make({ random: seededRandom(6) });
      b.update([endpointInfo(1), endpointInfo(2), endpointInfo(3), endpointInfo(4)]);
      for (let i = 0; i < 400; i++) b.pick()?.begin();
      const pending = b.endpoints.map((e) => e.pending);
      assert.equal(
        pending.reduce((a, c) => a + c, 0),
        400,
      );
      assert.ok(Math.max(...pending) - Math.min(...pending) <= 4, `pending per endpoint: ${pending.join(', ')}`);
    });
  });
}
