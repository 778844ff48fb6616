// The policy service for grpc-js: one server-streaming Watch per proxy (its pod). Like the destination
// service, every message is the pod's whole policy, sent at once and again after store changes
// (coalesced for a few ms), only when it differs from what that stream last received.
import grpc from '@grpc/grpc-js';
import type { Logger } from '../../core/log.js';
import type { InboundPolicy, PolicyHandlers, WatchInbound } from '../../api/policy.js';
import type { Store } from '../store/store.js';
import { inboundPolicy, type PolicySettings } from './resolve.js';

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

interface Watcher {
  readonly call: grpc.ServerWritableStream<WatchInbound, InboundPolicy>;
  readonly namespace: string;
  readonly pod: string;
  sent: string;
  blocked: boolean;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function createPolicyService(o: PolicyServiceOptions): PolicyService {
  const coalesceMs = o.coalesceMs ?? 25;
  const watchers = new Set<Watcher>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const push = (w: Watcher): void => {
    if (w.blocked || w.call.cancelled || w.call.writableEnded) return;
    const answer = inboundPolicy(o.store.snapshot(), w.namespace, w.pod, o);
    const json = JSON.stringify(answer);
    if (json === w.sent) return;
    w.sent = json;
    if (!w.call.write(answer)) w.blocked = true;
  };

  const unsubscribe = o.store.subscribe(() => {
    if (timer === undefined && !closed) {
      timer = setTimeout(() => {
        timer = undefined;
        for (const w of watchers) push(w);
      }, coalesceMs);
    }
  });

  const Watch = (call: grpc.ServerWritableStream<WatchInbound, InboundPolicy>): void => {
    const { namespace, pod } = call.request;
    if (closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'policy service is shutting down' });
      return;
    }
    if (!NAME.test(namespace) || !NAME.test(pod)) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `policy: namespace and pod must be Kubernetes names, got ${JSON.stringify(namespace)}/${JSON.stringify(pod)}` });
      return;
    }
    const w: Watcher = { call, namespace, pod, sent: '', blocked: false };
    watchers.add(w);
    const done = () => watchers.delete(w);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('finish', done);
    call.on('error', (err: Error) => {
      done();
      o.log.debug({ err, namespace, pod }, 'policy stream failed');
    });
    call.on('drain', () => {
      w.blocked = false;
      push(w);
    });
    push(w);
  };

  return {
    handlers: { Watch },
    watchers: () => watchers.size,
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      for (const w of [...watchers]) {
        watchers.delete(w);
        if (!w.call.cancelled && !w.call.writableEnded) w.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'policy service is shutting down' });
      }
    },
  };
}
