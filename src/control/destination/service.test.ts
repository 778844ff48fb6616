// The destination service over real gRPC on loopback, with the API's own client (what the proxy uses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../test/basics.js';
import { startTestControlPlane, type TestControlPlane } from '../../../test/control-plane.js';
import { watchDestination, type Update } from '../../api/destination.js';
import { GrpcChannel, type Call, type Status } from '../../api/grpc/channel.js';
import { GrpcStatus } from '../../api/grpc/protocol.js';
import { startControlPlane } from '../server.js';
import { sampleContent, pod } from '../store/contract.js';
import { LocalStore } from '../store/local/local.js';

/** A watch that records every message and how it ended. */
function watch(client: GrpcChannel, path: string): { updates: Update[]; status: Status | undefined; call: Call } {
  const w = { updates: [] as Update[], status: undefined as Status | undefined };
  const call = watchDestination(client, path, { message: (u) => w.updates.push(u), end: (s) => (w.status = s) });
  return Object.assign(w, { call });
}

async function setup(t: {
  after(fn: () => Promise<void> | void): void;
}): Promise<{ store: LocalStore; cp: TestControlPlane; client: GrpcChannel }> {
  const store = new LocalStore(sampleContent());
  const cp = await startTestControlPlane({ store });
  const client = new GrpcChannel(cp.addr, { tls: cp.channelTls });
  t.after(async () => {
    client.close();
    await cp.close();
  });
  return { store, cp, client };
}

void test('a Service IP: the answer at once, then a new one after a change that matters, none for a change that does not', async (t) => {
  const { store, client, cp } = await setup(t);
  assert.ok(cp.address.port > 0);
  const w = watch(client, '10.96.0.10:80');
  const first = await waitFor('the first answer', () => w.updates[0]);
  assert.deepEqual(first, {
    known: true,
    service: 'web.default.svc.cluster.local:80',
    endpoints: [
      {
        addr: '10.244.0.11:8080',
        weight: 1,
        identity: 'spiffe://cluster.local/ns/default/sa/default',
        protocol_hint: 'HTTP1',
        meshed: true,
        pod: 'default/web-1',
        workload: '',
      },
    ],
    // A client receives absent repeated fields as empty lists (and an absent workload as "").
    routes: [],
    backends: [],
  });

  // A pod unrelated to the Service: the answer is the same, so nothing is sent.
  const unrelated = sampleContent();
  unrelated.pods.push(pod('batch', '10.244.0.30', { labels: {} }));
  store.replace(unrelated);
  await new Promise((r) => setTimeout(r, 200));

  // web-2 becomes ready.
  const changed = sampleContent();
  changed.services[0] = {
    ...changed.services[0]!,
    endpoints: changed.services[0]!.endpoints.map((e) => ({ ...e, ready: true })),
  };
  changed.pods[1] = { ...changed.pods[1]!, ready: true };
  const t0 = Date.now();
  store.replace(changed);
  const second = await waitFor('the second answer', () => w.updates[1]);
  t.diagnostic(`update arrived ${Date.now() - t0} ms after the change`);
  assert.deepEqual(
    second.endpoints.map((e) => e.addr),
    ['10.244.0.11:8080', '10.244.0.12:8080'],
  );
  assert.equal(w.updates.length, 2, 'no message for the unrelated change');
});

void test('an address the mesh does not know: known=false, and known once it appears', async (t) => {
  const { store, client } = await setup(t);
  const w = watch(client, '10.244.0.99:5000');
  assert.deepEqual(await waitFor('the first answer', () => w.updates[0]), {
    known: false,
    service: '',
    endpoints: [],
    routes: [],
    backends: [],
  });
  const more = sampleContent();
  more.pods.push(pod('late', '10.244.0.99'));
  store.replace(more);
  const second = await waitFor('the second answer', () => w.updates[1]);
  assert.equal(second.known, true);
  assert.equal(second.endpoints[0]?.pod, 'default/late');
});

void test('garbage: INVALID_ARGUMENT naming the path', async (t) => {
  const { client } = await setup(t);
  const w = watch(client, 'not a path');
  const status = await waitFor('the status', () => w.status);
  assert.equal(status.code, GrpcStatus.INVALID_ARGUMENT);
  assert.match(status.details, /^path "not a path": /);
  assert.equal(w.updates.length, 0);
});

void test('a cancelled stream is forgotten; close ends the others with UNAVAILABLE', async (t) => {
  const { client, cp } = await setup(t);
  const a = watch(client, 'web.default:80');
  const b = watch(client, 'web.default.svc.cluster.local:80');
  await waitFor('both answers', () => (a.updates.length && b.updates.length ? true : undefined));
  assert.deepEqual(a.updates[0], b.updates[0]);
  assert.equal(cp.destination.watchers(), 2);
  a.call.cancel();
  await waitFor('the server to forget the cancelled stream', () =>
    cp.destination.watchers() === 1 ? true : undefined,
  );
  await cp.close();
  const status = await waitFor('the status', () => b.status);
  assert.equal(status.code, GrpcStatus.UNAVAILABLE);
  assert.equal(cp.destination.watchers(), 0);
});

void test('port in use: a clear error', async (t) => {
  const { cp } = await setup(t);
  await assert.rejects(
    startControlPlane({ store: new LocalStore(), host: '127.0.0.1', port: cp.address.port, ca: cp.ca }),
    /control plane: cannot listen on 127\.0\.0\.1:\d+/,
  );
});

void test('routes and backends over the wire: what a client decodes', async (t) => {
  const { store, client } = await setup(t);
  const content = sampleContent();
  store.replace({
    ...content,
    routes: [
      {
        kind: 'HTTPRoute',
        namespace: 'default',
        name: 'r',
        parents: [{ name: 'web', port: 80 }],
        rules: [
          {
            matches: [
              {
                path: { type: 'Exact', value: '/x' },
                headers: [],
                queryParams: [{ type: 'RegularExpression', name: 'v', value: '[0-9]+' }],
              },
            ],
            filters: [{ type: 'RequestRedirect', scheme: 'https', statusCode: 301 }],
            backends: [],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
            filters: [],
            backends: [{ name: 'web', port: 80, weight: 3 }],
            backendRequestTimeoutMs: 250,
            retry: {
              attempts: 2,
              statuses: [[502, 504]],
              grpcCodes: [],
              connectFailure: true,
              reset: false,
              timeout: false,
            },
          },
        ],
      },
    ],
  });
  const w = watch(client, 'web.default:80');
  const u = await waitFor('the first answer', () => w.updates[0]);
  const [redirect, split] = u.routes?.[0]?.rules ?? [];
  // Message fields that were not sent decode as null, scalars at their defaults.
  assert.deepEqual(redirect?.matches[0], {
    path: { type: 'EXACT', value: '/x' },
    method: '',
    headers: [],
    query_params: [{ type: 'REGEX', name: 'v', value: '[0-9]+' }],
    grpc_method: null,
  });
  assert.deepEqual(redirect?.filters[0], {
    type: 'REQUEST_REDIRECT',
    header_modifier: null,
    mirror: null,
    url_rewrite: null,
    redirect: { scheme: 'https', hostname: '', path: null, port: 0, status_code: 301 },
  });
  assert.equal(redirect?.retry, null);
  assert.deepEqual(split?.backends, [{ backend: 'web.default.svc.cluster.local:80', weight: 3 }]);
  assert.equal(split?.backend_request_timeout_ms, 250);
  assert.deepEqual(split?.retry, {
    attempts: 2,
    statuses: [{ from: 502, to: 504 }],
    grpc_codes: [],
    connect_failure: true,
    reset: false,
    timeout: false,
  });
  assert.deepEqual(
    u.backends?.map((b) => [b.service, b.exists, b.endpoints.length]),
    [['web.default.svc.cluster.local:80', true, 1]],
  );
});
