// The destination service for grpc-js: one server-streaming Get per watched path, each message the
// whole answer for it (../streams.ts: at once, then after store changes, only when it changed).
import grpc from '@grpc/grpc-js';
import type { Logger } from '../../core/log.js';
import type { GetDestination, Update } from '../../api/destination.js';
import type { DestinationHandlers } from '../../api/load.js';
import type { Store } from '../store/store.js';
import { answer, parsePath, type Target } from './resolve.js';
import { snapshotStreams } from '../streams.js';

export interface DestinationServiceOptions {
  readonly store: Store;
  /** The SPIFFE trust domain of endpoint identities, e.g. `cluster.local`. */
  readonly trustDomain: string;
  readonly log: Logger;
  /** How long after a store change the answers are recomputed (ms); batches bursts. Default 25. */
  readonly coalesceMs?: number;
}

export interface DestinationService {
  readonly handlers: DestinationHandlers;
  /** Streams open now. */
  watchers(): number;
  /** Ends every stream with UNAVAILABLE (so clients reconnect elsewhere or later) and stops listening
   *  to the store. */
  close(): void;
}

export function createDestinationService(o: DestinationServiceOptions): DestinationService {
  const streams = snapshotStreams<Target, Update>({
    store: o.store,
    service: 'destination service',
    ...(o.coalesceMs !== undefined ? { coalesceMs: o.coalesceMs } : {}),
    answer: (snapshot, target) => answer(snapshot, target, o.trustDomain),
    onError: (err, target) => o.log.debug({ err, target }, 'destination stream failed'),
  });

  const Get = (call: grpc.ServerWritableStream<GetDestination, Update>): void => {
    const path = call.request.path;
    if (streams.refuseIfClosed(call)) return;
    const parsed = parsePath(path);
    if (!parsed.ok) {
      o.log.debug({ peer: call.getPeer(), path }, 'refused destination path');
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: parsed.message });
      return;
    }
    streams.open(call, parsed.target);
  };

  return { handlers: { Get }, watchers: () => streams.watchers(), close: () => streams.close() };
}
