// Discovery against the real destination service over gRPC on loopback. (This test starts the control
// plane, which the proxy's own code never imports: they meet only over the API.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, waitFor } from '../../../test/basics.js';
import {
  startTestControlPlane as startControlPlane,
  type TestControlPlaneOptions,
} from '../../../test/control-plane.js';
import { MeshCa } from '../../control/identity/ca.js';
import { toPort, type SocketAddr } from '../../core/addr.js';
import { createLogger } from '../../core/log.js';
import type { ControlPlane } from '../../control/server.js';
import { pod, sampleContent } from '../../control/store/contract.js';
import { LocalStore } from '../../control/store/local/local.js';
import { Discovery, type Destination } from './discover.js';

const log = createLogger('test-discovery', 'silent');
const addr = (text: string): SocketAddr => {
  const [host, port] = text.split(':') as [string, string];
  return { host, port: toPort(Number(port)) };
};

const keys = (d: Destination) => d.balancer.endpoints.map((e) => e.key).sort();
const fast = { initialMs: 50, maxMs: 500 };
// One CA for every control plane of this file: one started again on the same port is trusted again.
const ca = await MeshCa.create();
const TLS = {
  trustAnchors: ca.trustAnchorPem,
  serverIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
};
const startTestControlPlane = (o: TestControlPlaneOptions) => startControlPlane({ ca, ...o });

void test('first answer, then the same object synchronously; an update after a change', async (t) => {
  const store = new LocalStore(sampleContent());
  const cp = await startTestControlPlane({ store });
  const d = new Discovery({ tls: TLS, addr: addr(`127.0.0.1:${cp.address.port}`), log, backoff: fast });
  t.after(async () => {
    d.close();
    await cp.close();
  });
  const first = d.resolve(addr('10.96.0.10:80'));
  assert.ok(first instanceof Promise, 'a new destination is a promise');
  const dest = await first;
  assert.equal(dest.known, true);
  assert.equal(dest.answered, true);
  assert.equal(dest.service, 'web.default.svc.cluster.local:80');
  assert.deepEqual(keys(dest), ['10.244.0.11:8080']);
  const e = dest.balancer.pick();
  assert.equal(e?.identity, 'spiffe://cluster.local/ns/default/sa/default');
  assert.equal(e?.protocolHint, 'HTTP1');
  assert.equal(e?.meshed, true);
  assert.equal(e?.pod, 'default/web-1');
  // The metrics' and tap's view of it (no workload in the sample store: "").
  assert.deepEqual(e?.meta, {
    key: 'default\0\0web-1\0web',
    namespace: 'default',
    workload: '',
    pod: 'web-1',
    service: 'web',
  });
  assert.equal(d.resolve(addr('10.96.0.10:80')), dest, 'then the same object, synchronously');

  const changed = sampleContent();
  changed.services[0] = {
    ...changed.services[0]!,
    endpoints: changed.services[0]!.endpoints.map((x) => ({ ...x, ready: true })),
  };
  const t0 = Date.now();
  store.replace(changed);
  await waitFor('the second endpoint', () => (dest.balancer.endpoints.length === 2 ? true : undefined));
  t.diagnostic(`the change reached the client in ${Date.now() - t0} ms`);
  assert.deepEqual(keys(dest), ['10.244.0.11:8080', '10.244.0.12:8080']);
  assert.equal(
    dest.balancer.endpoints.find((x) => x.key === '10.244.0.11:8080'),
    e,
    'the remaining endpoint kept its stats',
  );
  assert.equal(d.stats.updates, 2);
});

void test('an unknown IP is passthrough; garbage is refused and passthrough; a pod IP is that pod', async (t) => {
  const store = new LocalStore(sampleContent());
  const cp = await startTestControlPlane({ store });
  const d = new Discovery({ tls: TLS, addr: addr(`127.0.0.1:${cp.address.port}`), log, backoff: fast });
  t.after(async () => {
    d.close();
    await cp.close();
  });
  const unknown = await d.resolve(addr('10.1.2.3:80'));
  assert.equal(unknown.known, false);
  assert.equal(unknown.answered, true);
  assert.equal(unknown.balancer.pick(), undefined);

  const garbage = await d.resolve({ host: '999.1.1.1', port: toPort(80) });
  assert.equal(garbage.known, false);
  assert.equal(d.stats.refused, 1);

  const podDst = await d.resolve(addr('10.244.0.20:9090'));
  assert.equal(podDst.known, true);
  assert.equal(podDst.service, undefined);
  assert.deepEqual(keys(podDst), ['10.244.0.20:9090']);
  assert.equal(podDst.balancer.pick()?.identity, undefined, 'the client pod is not meshed');
});

void test('no control plane: passthrough after the initial timeout, then the answer when it comes', async (t) => {
  const port = await freePort();
  const d = new Discovery({ tls: TLS, addr: addr(`127.0.0.1:${port}`), log, initialTimeoutMs: 200, backoff: fast });
  const started: { cp?: ControlPlane } = {};
  t.after(async () => {
    d.close();
    await started.cp?.close();
  });
  const dest = await d.resolve(addr('10.96.0.10:80'));
  assert.equal(dest.known, false);
  assert.equal(dest.answered, false);
  assert.equal(d.stats.lookupTimeouts, 1);
  assert.equal(d.resolve(addr('10.96.0.10:80')), dest, 'settled: the object itself');
  started.cp = await startTestControlPlane({ store: new LocalStore(sampleContent()), port });
  await waitFor('the answer', () => (dest.known ? true : undefined));
  assert.deepEqual(keys(dest), ['10.244.0.11:8080']);
});

void test('control plane down: the last answer stays; after a restart on the same port, the client catches up', async (t) => {
  const store = new LocalStore(sampleContent());
  let cp = await startTestControlPlane({ store });
  const port = cp.address.port;
  const d = new Discovery({ tls: TLS, addr: addr(`127.0.0.1:${port}`), log, backoff: fast });
  t.after(async () => {
    d.close();
    await cp.close();
  });
  const dest = await d.resolve(addr('10.96.0.10:80'));
  assert.deepEqual(keys(dest), ['10.244.0.11:8080']);

  // A crash, not a goodbye: connections cut.
  cp.server.forceShutdown();
  await waitFor('the watch to notice', () => (dest.stale ? true : undefined));
  assert.equal(dest.known, true);
  assert.deepEqual(keys(dest), ['10.244.0.11:8080'], 'still routing with what it knew');
  assert.equal(d.resolve(addr('10.96.0.10:80')), dest);
  // Let a few reconnection attempts fail.
  await waitFor('reconnection attempts', () => (d.stats.reconnects >= 3 ? true : undefined));
  assert.deepEqual(keys(dest), ['10.244.0.11:8080']);

  // Meanwhile the world changed.
  const changed = sampleContent();
  changed.services[0] = {
    ...changed.services[0]!,
    endpoints: [
      ...changed.services[0]!.endpoints,
      { pod: 'default/web-3', ip: '10.244.0.13', ports: { 80: 8080 }, ready: true },
    ],
  };
  changed.pods.push(pod('web-3', '10.244.0.13'));
  store.replace(changed);
  cp = await startTestControlPlane({ store, port });
  await waitFor('the client to catch up', () =>
    dest.balancer.endpoints.length === 2 && !dest.stale ? true : undefined,
  );
  assert.deepEqual(keys(dest), ['10.244.0.11:8080', '10.244.0.13:8080']);
});

void test('idle watches are closed; close() ends everything and settles pending lookups', async (t) => {
  const store = new LocalStore(sampleContent());
  const cp = await startTestControlPlane({ store });
  // idleMs well above a first answer's time on a busy machine (at 100 ms the watch was sometimes closed
  // before the first assertion).
  const d = new Discovery({ tls: TLS, addr: addr(`127.0.0.1:${cp.address.port}`), log, idleMs: 500, backoff: fast });
  t.after(async () => {
    d.close();
    await cp.close();
  });
  const dest = await d.resolve(addr('10.96.0.10:80'));
  assert.equal(d.stats.watches, 1);
  await waitFor('the idle watch to close', () => (d.stats.idleClosed === 1 ? true : undefined));
  assert.equal(d.stats.watches, 0);
  await waitFor('the server to see the stream go', () => (cp.destination.watchers() === 0 ? true : undefined));
  const again = d.resolve(addr('10.96.0.10:80'));
  assert.ok(again instanceof Promise, 'a new watch');
  assert.notEqual(await again, dest);

  // Work in flight keeps a watch alive.
  const busy = await d.resolve(addr('10.96.0.10:80'));
  const e = busy.balancer.pick();
  assert.ok(e);
  const start = e.begin();
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(d.stats.idleClosed, 1);
  assert.equal(d.resolve(addr('10.96.0.10:80')), busy);
  e.end(start, true);

  const pending = d.resolve(addr('10.96.0.99:80'));
  d.close();
  const settled = await pending;
  assert.equal(settled.known, false);
  const after = d.resolve(addr('10.96.0.10:80'));
  assert.ok(!(after instanceof Promise));
  assert.equal(after.known, false);
  await waitFor('the server to see every stream go', () => (cp.destination.watchers() === 0 ? true : undefined));
});
