// The policy service for grpc-js: one server-streaming Watch per proxy (its pod), each message the pod's
// whole policy (../streams.ts: at once, then after store changes, only when it changed).
import grpc from '@grpc/grpc-js';
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

export function createPolicyService(o: PolicyServiceOptions): PolicyService {
  const streams = snapshotStreams<{ namespace: string; pod: string }, InboundPolicy>({
    store: o.store,
    service: 'policy service',
    ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}),
    answer: (snapshot, { namespace, pod }) => inboundPolicy(snapshot, namespace, pod, o),
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
    streams.open(call, { namespace, pod });
  };

  return { handlers: { Watch }, watchers: () => streams.watchers(), close: () => streams.close() };
}
