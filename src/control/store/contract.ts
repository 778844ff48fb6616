// The contract every Store implementation keeps (local now, Kubernetes later), as one node:test suite:
// an implementation's test file calls `storeContract` with a harness that can set the store's content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  byNamespaceName,
  type PodEntry,
  type PolicyEntries,
  type ServiceEntry,
  type Store,
  type StoreSnapshot,
} from './store.js';

export interface StoreContract {
  readonly store: Store;
  /** Makes the store's source hold exactly `content` (LocalStore: replace; a Kubernetes store: write
   *  objects to a test API server). The store may reflect it later; the suite waits. */
  set(content: {
    services: readonly ServiceEntry[];
    pods: readonly PodEntry[];
    policy?: PolicyEntries;
  }): Promise<void> | void;
  close(): Promise<void> | void;
}

/** How long the suite waits for a store to reflect a change before failing (generous on purpose). */
const WAIT_MS = 10_000;

async function until<T>(what: string, fn: () => T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function pod(name: string, ip: string, extra: Partial<PodEntry> = {}): PodEntry {
  return {
    namespace: 'default',
    name,
    ip,
    ready: true,
    meshed: true,
    serviceAccount: 'default',
    opaquePorts: [],
    labels: { app: 'web' },
    ...extra,
  };
}

export function service(
  name: string,
  clusterIP: string,
  endpoints: ServiceEntry['endpoints'],
  extra: Partial<ServiceEntry> = {},
): ServiceEntry {
  return {
    namespace: 'default',
    name,
    clusterIP,
    ports: [{ name: 'http', port: 80, appProtocol: 'http' }],
    endpoints,
    ...extra,
  };
}

/** A small mesh: one Service over two pods (one not ready) and a pod outside any Service. */
export function sampleContent(): { services: ServiceEntry[]; pods: PodEntry[] } {
  return {
    services: [
      service('web', '10.96.0.10', [
        { pod: 'default/web-1', ip: '10.244.0.11', ports: { 80: 8080 }, ready: true },
        { pod: 'default/web-2', ip: '10.244.0.12', ports: { 80: 8080 }, ready: false },
      ]),
    ],
    pods: [
      pod('web-1', '10.244.0.11', { ports: [{ name: 'http', containerPort: 8080 }] }),
      pod('web-2', '10.244.0.12', { ready: false, defaultInboundPolicy: 'deny' }),
      pod('client', '10.244.0.20', { meshed: false, labels: {} }),
    ],
  };
}

/** One of each policy kind, normalised as StoreSnapshot.policy holds them (lists sorted by namespace
 *  and name, references with their namespace). */
export function samplePolicy(): PolicyEntries {
  return {
    servers: [
      {
        namespace: 'default',
        name: 'web-http',
        podSelector: { matchLabels: { app: 'web' }, matchExpressions: [] },
        port: 'http',
        proxyProtocol: 'HTTP/1',
      },
    ],
    authorizationPolicies: [
      {
        namespace: 'default',
        name: 'web-ops',
        target: { kind: 'Server', name: 'web-http' },
        authentications: [
          { kind: 'MeshTLSAuthentication', namespace: 'default', name: 'ops' },
          { kind: 'NetworkAuthentication', namespace: 'default', name: 'pods' },
        ],
      },
    ],
    meshTLSAuthentications: [
      {
        namespace: 'default',
        name: 'ops',
        identities: ['spiffe://cluster.local/ns/ops/sa/*'],
        identityRefs: [{ kind: 'ServiceAccount', namespace: 'default', name: 'ops' }],
      },
    ],
    networkAuthentications: [
      { namespace: 'default', name: 'pods', networks: [{ cidr: '10.244.0.0/16', except: ['10.244.0.20/32'] }] },
    ],
    rateLimits: [
      {
        namespace: 'default',
        name: 'web',
        server: 'web-http',
        total: 100,
        identity: 10,
        overrides: [{ requestsPerSecond: 50, serviceAccounts: [{ namespace: 'default', name: 'ops' }] }],
      },
    ],
  };
}

/** Order-insensitive view of a snapshot's content (a store may list things in any order). */
function normalized(s: { services: readonly ServiceEntry[]; pods: readonly PodEntry[] }): unknown {
  return {
    services: [...s.services]
      .sort(byNamespaceName)
      .map((svc) => ({ ...svc, endpoints: [...svc.endpoints].sort((a, b) => a.pod.localeCompare(b.pod)) })),
    pods: [...s.pods].sort(byNamespaceName),
  };
}

export function storeContract(name: string, make: () => Promise<StoreContract> | StoreContract): void {
  void test(`${name}: store contract`, async (t) => {
    await t.test('starts with a snapshot', async () => {
      const h = await make();
      try {
        const s = h.store.snapshot();
        assert.equal(typeof s.version, 'number');
        assert.ok(Array.isArray(s.services) && Array.isArray(s.pods));
      } finally {
        await h.close();
      }
    });

    await t.test('reflects what was set, with a higher version', async () => {
      const h = await make();
      try {
        const before = h.store.snapshot().version;
        const content = sampleContent();
        await h.set(content);
        const s = await until('the content to show', () => {
          const s = h.store.snapshot();
          return s.version > before && s.services.length === 1 ? s : undefined;
        });
        assert.deepEqual(normalized(s), normalized(content));
      } finally {
        await h.close();
      }
    });

    await t.test('tells every subscriber, with the snapshot the store then returns, versions increasing', async () => {
      const h = await make();
      try {
        const seenA: StoreSnapshot[] = [];
        const seenB: StoreSnapshot[] = [];
        const consistent: boolean[] = [];
        h.store.subscribe((s) => {
          seenA.push(s);
          consistent.push(h.store.snapshot().version === s.version);
        });
        h.store.subscribe((s) => seenB.push(s));
        const first = sampleContent();
        await h.set(first);
        await until('the first notification', () => (seenA.some((s) => s.services.length === 1) ? true : undefined));
        const second = sampleContent();
        second.pods.push(pod('web-3', '10.244.0.13'));
        await h.set(second);
        await until('both subscribers to see the second change', () =>
          [seenA, seenB].every((seen) => seen.some((s) => s.pods.length === 4)) ? true : undefined,
        );
        for (const seen of [seenA, seenB]) {
          for (let i = 1; i < seen.length; i++)
            assert.ok((seen[i] as StoreSnapshot).version > (seen[i - 1] as StoreSnapshot).version);
        }
        assert.ok(consistent.every(Boolean), 'snapshot() during a notification returns the notified snapshot');
        assert.deepEqual(normalized(seenA[seenA.length - 1] as StoreSnapshot), normalized(second));
      } finally {
        await h.close();
      }
    });

    await t.test('stops telling a subscriber that unsubscribed (twice is harmless)', async () => {
      const h = await make();
      try {
        let stopped = 0;
        let other = 0;
        const stop = h.store.subscribe(() => stopped++);
        h.store.subscribe(() => other++);
        stop();
        stop();
        await h.set(sampleContent());
        await until('the remaining subscriber to hear of it', () => (other > 0 ? true : undefined));
        assert.equal(stopped, 0);
      } finally {
        await h.close();
      }
    });

    await t.test('carries the policy objects, normalised, and their changes', async () => {
      const h = await make();
      try {
        const content = { ...sampleContent(), policy: samplePolicy() };
        await h.set(content);
        const s = await until('the policy to show', () => {
          const s = h.store.snapshot();
          return (s.policy?.servers.length ?? 0) === 1 ? s : undefined;
        });
        assert.deepEqual(s.policy, samplePolicy());
        const web1 = s.pods.find((p) => p.name === 'web-1');
        assert.deepEqual(web1?.ports, [{ name: 'http', containerPort: 8080 }]);
        assert.equal(s.pods.find((p) => p.name === 'web-2')?.defaultInboundPolicy, 'deny');
        const fewer = { ...samplePolicy(), authorizationPolicies: [] };
        await h.set({ ...sampleContent(), policy: fewer });
        await until('the authorization to go', () =>
          h.store.snapshot().policy?.authorizationPolicies.length === 0 ? true : undefined,
        );
      } finally {
        await h.close();
      }
    });

    await t.test('a snapshot already handed out never changes', async () => {
      const h = await make();
      try {
        await h.set(sampleContent());
        const old = await until('the content to show', () => {
          const s = h.store.snapshot();
          return s.services.length === 1 ? s : undefined;
        });
        const copy = structuredClone(old);
        await h.set({ services: [], pods: [] });
        await until('the change to show', () => (h.store.snapshot().services.length === 0 ? true : undefined));
        assert.deepEqual(old, copy);
      } finally {
        await h.close();
      }
    });
  });
}
