// The policy service for grpc-js: one server-streaming Watch per proxy (its pod), each message the pod's
// whole policy (../streams.ts: at once, then after store changes, only when it changed). Only for a
// client that presents its certificate, and only about pods of the certificate's identity (../access.ts):
// checked when the watch opens and again with every answer, since a pod the store does not know yet may
// turn out to be another identity's.
import grpc from '@grpc/grpc-js';
import { parseSpiffeId, type SpiffeId } from '../../api/identity.js';
import { AccessCodes, AccessError, clientIdentity } from '../access.js';
import type { Logger } from '../../core/log.js';
import type { PolicyHandlers } from '../../api/load.js';
import type { InboundPolicy, WatchInbound } from '../../api/policy.js';
import type { Store } from '../store/store.js';
import { inboundPolicy, type PolicySettings } from './resolve.js';
import { snapshotStreams } from '../streams.js';

export interface PolicyServiceOptions extends PolicySettings {
  readonly store: Store;
  readonly log: Logger;
  /** How long after a store change the answers are recomputed (ms). Default 25. */
  readonly coalesceMs?: number;
}

export interface PolicyService {
  readonly handlers: PolicyHandlers;
  watchers(): number;
  close(): void;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function denied(client: SpiffeId, namespace: string, pod: string, owner: string | undefined): AccessError {
  const whose = owner !== undefined ? `, whose identity is ${owner}` : '';
  return new AccessError(
    AccessCodes.PERMISSION_DENIED,
    `policy: ${client} may not read the policy of pod ${namespace}/${pod}${whose}; a proxy reads only its own pod's`,
  );
}

export function createPolicyService(o: PolicyServiceOptions): PolicyService {
  const streams = snapshotStreams<{ namespace: string; pod: string; client: SpiffeId }, InboundPolicy>({
    store: o.store,
    service: 'policy service',
    ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}),
    answer: (snapshot, { namespace, pod, client }) => {
      const entry = snapshot.pods.find((p) => p.namespace === namespace && p.name === pod);
      if (entry !== undefined) {
        const owner = `spiffe://${o.trustDomain}/ns/${entry.namespace}/sa/${entry.serviceAccount}`;
        if (owner !== client) throw denied(client, namespace, pod, owner);
      }
      return inboundPolicy(snapshot, namespace, pod, o);
    },
    onError: (err, { namespace, pod }) => o.log.debug({ err, namespace, pod }, 'policy stream failed'),
  });

  const Watch = (call: grpc.ServerWritableStream<WatchInbound, InboundPolicy>): void => {
    const { namespace, pod } = call.request;
    if (streams.refuseIfClosed(call)) return;
    if (!NAME.test(namespace) || !NAME.test(pod)) {
      call.emit('error', {
        code: grpc.status.INVALID_ARGUMENT,
        details: `policy: namespace and pod must be Kubernetes names, got ${JSON.stringify(namespace)}/${JSON.stringify(pod)}`,
      });
      return;
    }
    const client = clientIdentity(call);
    if (client === undefined) {
      const err = new AccessError(
        AccessCodes.UNAUTHENTICATED,
        `policy: pod ${namespace}/${pod}: the client presented no certificate the mesh's trust anchor verifies; the policy service answers a proxy that presents its own certificate`,
      );
      o.log.info({ peer: call.getPeer(), namespace, pod, code: err.code }, 'policy watch refused');
      call.emit('error', { code: err.status, details: `${err.message} [${err.code}]` });
      return;
    }
    // A workload identity names its namespace: one from elsewhere can own no pod here.
    const parsed = parseSpiffeId(client);
    if (parsed?.trustDomain !== o.trustDomain || parsed.namespace !== namespace) {
      const err = denied(client, namespace, pod, undefined);
      o.log.info({ peer: call.getPeer(), client, namespace, pod, code: err.code }, 'policy watch refused');
      call.emit('error', { code: err.status, details: `${err.message} [${err.code}]` });
      return;
    }
    streams.open(call, { namespace, pod, client });
  };

  return { handlers: { Watch }, watchers: () => streams.watchers(), close: () => streams.close() };
}
