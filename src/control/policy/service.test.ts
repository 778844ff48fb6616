// The policy service's access rule over real TLS and gRPC (the proxy's own client): a watch needs a
// client certificate from the mesh CA, and answers only about pods of that certificate's identity.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startTestControlPlane, workloadCertificate, type TestControlPlane } from '../../../test/control-plane.js';
import { GrpcChannel } from '../../api/grpc/channel.js';
import { grpcStatusName } from '../../api/grpc/protocol.js';
import type { ClientCertificate } from '../../api/grpc/tls.js';
import { watchInboundPolicy, type InboundPolicy } from '../../api/policy.js';
import { MeshCa } from '../identity/ca.js';
import { pod, sampleContent, samplePolicy } from '../store/contract.js';
import { LocalStore } from '../store/local/local.js';

/** The first message of a watch of `namespace/name`, or how it ended. */
function firstAnswer(
  c: GrpcChannel,
  namespace: string,
  name: string,
): Promise<{ answer: InboundPolicy } | { status: string; details: string }> {
  return new Promise((resolve) => {
    const call = watchInboundPolicy(
      c,
      { namespace, pod: name },
      {
        message: (m) => {
          call.cancel();
          resolve({ answer: m });
        },
        end: (s) => resolve({ status: grpcStatusName(s.code), details: s.details }),
      },
    );
  });
}

function client(t: TestContext, cp: TestControlPlane, cert?: ClientCertificate): GrpcChannel {
  const c = new GrpcChannel(cp.addr, { tls: cp.channelTls });
  if (cert !== undefined) c.setClientCertificate(cert);
  t.after(() => c.close());
  return c;
}

async function setup(t: TestContext): Promise<{ cp: TestControlPlane; store: LocalStore }> {
  // sampleContent's pods (web-1, web-2, ...) run in default as the ServiceAccount default.
  const store = new LocalStore({ ...sampleContent(), policy: samplePolicy() });
  const cp = await startTestControlPlane({ store });
  t.after(() => cp.close());
  return { cp, store };
}

void test("a pod's own identity gets its policy", async (t) => {
  const { cp } = await setup(t);
  const mine = await workloadCertificate(cp.ca, { namespace: 'default', serviceAccount: 'default' });
  const got = await firstAnswer(client(t, cp, mine), 'default', 'web-1');
  assert.ok('answer' in got, JSON.stringify(got));
  assert.equal(got.answer.known, true);
  assert.equal(got.answer.ports[0]?.server, 'default/web-http');
});

void test('no client certificate, or one the anchor does not verify: UNAUTHENTICATED', async (t) => {
  const { cp } = await setup(t);
  assert.deepEqual(await firstAnswer(client(t, cp), 'default', 'web-1'), {
    status: 'UNAUTHENTICATED',
    details:
      "policy: pod default/web-1: the client presented no certificate the mesh's trust anchor verifies; the policy service answers a proxy that presents its own certificate [OUTR_ERR_CONTROL_UNAUTHENTICATED]",
  });
  const foreign = await workloadCertificate(await MeshCa.create(), { namespace: 'default', serviceAccount: 'default' });
  const got = await firstAnswer(client(t, cp, foreign), 'default', 'web-1');
  assert.ok('status' in got);
  assert.equal(got.status, 'UNAUTHENTICATED');
});

void test("identity X asking about identity Y's pod: PERMISSION_DENIED, naming both", async (t) => {
  const { cp } = await setup(t);
  // The same namespace, another ServiceAccount.
  const other = await workloadCertificate(cp.ca, { namespace: 'default', serviceAccount: 'billing' });
  assert.deepEqual(await firstAnswer(client(t, cp, other), 'default', 'web-1'), {
    status: 'PERMISSION_DENIED',
    details:
      "policy: spiffe://cluster.local/ns/default/sa/billing may not read the policy of pod default/web-1, whose identity is spiffe://cluster.local/ns/default/sa/default; a proxy reads only its own pod's [OUTR_ERR_CONTROL_PERMISSION_DENIED]",
  });
  // Another namespace: refused at once, whatever the store knows.
  const shop = await workloadCertificate(cp.ca, { namespace: 'shop', serviceAccount: 'default' });
  assert.deepEqual(await firstAnswer(client(t, cp, shop), 'default', 'web-1'), {
    status: 'PERMISSION_DENIED',
    details:
      "policy: spiffe://cluster.local/ns/shop/sa/default may not read the policy of pod default/web-1; a proxy reads only its own pod's [OUTR_ERR_CONTROL_PERMISSION_DENIED]",
  });
  assert.equal(cp.policy.watchers(), 0);
});

void test('a pod not known yet gets nothing but defaults, and the watch ends when it turns out to be another identity', async (t) => {
  const { cp, store } = await setup(t);
  const billing = await workloadCertificate(cp.ca, { namespace: 'default', serviceAccount: 'billing' });
  const c = client(t, cp, billing);
  const messages: InboundPolicy[] = [];
  const ended = new Promise<{ status: string; details: string }>((resolve) =>
    watchInboundPolicy(
      c,
      { namespace: 'default', pod: 'late-1' },
      {
        message: (m) => messages.push(m),
        end: (s) => resolve({ status: grpcStatusName(s.code), details: s.details }),
      },
    ),
  );
  while (messages.length === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(messages[0]?.known, false);
  assert.deepEqual(messages[0]?.ports, []);
  // The pod appears, running as default/default (the sample's Server selects app=web).
  const content = sampleContent();
  store.replace({ ...content, policy: samplePolicy(), pods: [...content.pods, pod('late-1', '10.244.0.99')] });
  const end = await ended;
  assert.equal(end.status, 'PERMISSION_DENIED');
  assert.match(end.details, /whose identity is spiffe:\/\/cluster\.local\/ns\/default\/sa\/default/);
  assert.equal(messages.length, 1, "the pod's policy never reached it");
});
