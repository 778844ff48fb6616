// The proxy's policy watch against the real control plane (gRPC on loopback, a LocalStore): the first
// answer, a change streamed, and static stability: the last policy stays while the control plane is
// away, and the watch catches up when it is back; it opens only once its channel presents the pod's
// certificate, and moves to a new connection with each new one. (The control plane is started here as a
// test fixture; the proxy's code never imports it.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, waitFor } from '../../../../test/basics.js';
import { startTestControlPlane, workloadCertificate } from '../../../../test/control-plane.js';
import { GrpcChannel } from '../../../api/grpc/channel.js';
import { toPort } from '../../../core/addr.js';
import { MeshCa } from '../../../control/identity/ca.js';
import { createLogger } from '../../../core/log.js';
import { sampleContent, samplePolicy } from '../../../control/store/contract.js';
import { LocalStore } from '../../../control/store/local/local.js';
import { PolicyWatch } from './watch.js';

const log = createLogger('test-policy', 'silent');

// One CA for every control plane of this file: one started again must be trusted again.
const ca = await MeshCa.create();
const TLS = {
  trustAnchors: ca.trustAnchorPem,
  serverIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
};
/** The pods of sampleContent run as default/default. */
const WEB = { namespace: 'default', serviceAccount: 'default' };

const startOn = (store: LocalStore, port: number) =>
  startTestControlPlane({
    store,
    port,
    ca,
    policy: { defaultPolicy: 'all-authenticated', clusterNetworks: ['10.244.0.0/16'] },
  });

/** The proxy's shared channel to the control plane, presenting `identity`'s certificate. */
async function channelTo(port: number, t: { after(fn: () => void): void }): Promise<GrpcChannel> {
  const channel = new GrpcChannel(`127.0.0.1:${port}`, { tls: TLS });
  channel.setClientCertificate(await workloadCertificate(ca, WEB));
  t.after(() => channel.close());
  return channel;
}

void test('policy watch: first answer, live change, and the last policy kept while the control plane is away', async (t) => {
  const store = new LocalStore({ ...sampleContent(), policy: samplePolicy() });
  const port = await freePort();
  let cp = await startOn(store, port);
  const w = new PolicyWatch({
    addr: { host: '127.0.0.1', port: toPort(port) },
    channel: await channelTo(port, t),
    namespace: 'default',
    pod: 'web-1',
    defaultPolicy: 'deny',
    log,
    backoff: { initialMs: 50, maxMs: 200 },
  });
  t.after(async () => {
    w.close();
    await cp.close();
  });
  // Before the first answer: the configured default.
  assert.equal(w.current().fallback.server, 'default:deny');
  await w.whenAnswered(10_000);
  assert.equal(w.answered, true);
  const first = w.current();
  assert.equal(first.fallback.server, 'default:all-authenticated');
  assert.equal(first.ports.get(8080)?.server, 'default/web-http');
  assert.deepEqual(
    first.ports.get(8080)?.authorizations.map((a) => a.name),
    ['default/web-ops'],
  );
  assert.equal(first.ports.get(8080)?.limiter?.name, 'default/web');

  // A change is streamed: the authorization goes.
  store.replace({ ...sampleContent(), policy: { ...samplePolicy(), authorizationPolicies: [] } });
  await waitFor('the change', () => (w.current().ports.get(8080)?.authorizations.length === 0 ? true : undefined));
  const second = w.current();
  assert.ok(second.version > first.version);

  // The control plane goes away: the policy stays.
  await cp.close();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(w.current(), second);
  assert.ok(w.stats.reconnects > 0);

  // It comes back with another policy: the watch catches up.
  store.replace({ ...sampleContent(), policy: samplePolicy() });
  cp = await startOn(store, port);
  await waitFor('the answer after the outage', () =>
    w.current().ports.get(8080)?.authorizations.length === 1 ? true : undefined,
  );
});

void test('policy watch: waits for the client certificate, then moves to a new connection with each new one', async (t) => {
  const store = new LocalStore({ ...sampleContent(), policy: samplePolicy() });
  const port = await freePort();
  const cp = await startOn(store, port);
  const channel = new GrpcChannel(`127.0.0.1:${port}`, { tls: TLS });
  const w = new PolicyWatch({
    addr: { host: '127.0.0.1', port: toPort(port) },
    channel,
    namespace: 'default',
    pod: 'web-1',
    defaultPolicy: 'deny',
    log,
    backoff: { initialMs: 50, maxMs: 200 },
  });
  t.after(async () => {
    w.close();
    channel.close();
    await cp.close();
  });
  // Without a certificate the policy service would refuse it: it does not ask.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(cp.policy.watchers(), 0);
  assert.equal(w.answered, false);
  assert.equal(w.stats.reconnects, 0);

  channel.setClientCertificate(await workloadCertificate(ca, WEB));
  await w.whenAnswered(10_000);
  assert.equal(w.answered, true);
  const before = w.current();

  // A renewed certificate: the watch is opened again on a connection that presents it; the old one is
  // let go, and no reconnect (an outage) is counted.
  channel.setClientCertificate(await workloadCertificate(ca, WEB));
  await waitFor('the watch on the new connection', () => (w.stats.updates >= 2 ? true : undefined));
  await waitFor('one watch open', () => (cp.policy.watchers() === 1 ? true : undefined));
  assert.equal(w.stats.reconnects, 0);
  assert.equal(w.current().ports.get(8080)?.server, before.ports.get(8080)?.server);
});
