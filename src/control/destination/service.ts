// The destination service for grpc-js: one server-streaming Get per watched path. Every message is the
// whole answer (a snapshot, not a diff): simple and robust, since a client that missed anything is
// corrected by the next message, and a reconnecting client needs no resume point. Answers are sent at
// once, then after store changes (coalesced for a few ms so a burst of changes is one message), and
// only when they differ from what that stream last received.
import grpc from '@grpc/grpc-js';
import type { Logger } from '../../core/log.js';
import type { GetDestination, Update, DestinationHandlers } from '../../api/destination.js';
import type { Store } from '../store/store.js';
import { answer, parsePath, type Target } from './resolve.js';

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

interface Watcher {
  readonly call: grpc.ServerWritableStream<GetDestination, Update>;
  readonly target: Target;
  /** The target as text: watchers of the same target share one computed answer per refresh. */
  readonly key: string;
  /** The JSON of the last answer written, to skip identical ones. */
  sent: string;
  /** The stream's buffer is full: the latest answer is written on 'drain' (older ones are moot). */
  blocked: boolean;
}

export function createDestinationService(o: DestinationServiceOptions): DestinationService {
  const coalesceMs = o.coalesceMs ?? 25;
  const watchers = new Set<Watcher>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const push = (w: Watcher, shared?: Map<string, { update: Update; json: string }>): void => {
    if (w.blocked || w.call.cancelled || w.call.writableEnded) return;
    let a = shared?.get(w.key);
    if (a === undefined) {
      const update = answer(o.store.snapshot(), w.target, o.trustDomain);
      a = { update, json: JSON.stringify(update) };
      shared?.set(w.key, a);
    }
    if (a.json === w.sent) return;
    w.sent = a.json;
    if (!w.call.write(a.update)) w.blocked = true;
  };

  const refresh = (): void => {
    timer = undefined;
    // Many proxies watch the same Services: compute each answer once per change.
    const shared = new Map<string, { update: Update; json: string }>();
    for (const w of watchers) push(w, shared);
  };

  const unsubscribe = o.store.subscribe(() => {
    if (timer === undefined && !closed) timer = setTimeout(refresh, coalesceMs);
  });

  const Get = (call: grpc.ServerWritableStream<GetDestination, Update>): void => {
    const path = call.request.path;
    if (closed) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'destination service is shutting down' });
      return;
    }
    const parsed = parsePath(path);
    if (!parsed.ok) {
      o.log.debug({ peer: call.getPeer(), path }, 'refused destination path');
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: parsed.message });
      return;
    }
    const w: Watcher = { call, target: parsed.target, key: JSON.stringify(parsed.target), sent: '', blocked: false };
    watchers.add(w);
    const done = () => watchers.delete(w);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('finish', done);
    call.on('error', (err: Error) => {
      done();
      o.log.debug({ err, path }, 'destination stream failed');
    });
    call.on('drain', () => {
      w.blocked = false;
      push(w);
    });
    push(w);
  };

  return {
    handlers: { Get },
    watchers: () => watchers.size,
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      for (const w of [...watchers]) {
        watchers.delete(w);
        if (!w.call.cancelled && !w.call.writableEnded) {
          w.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'destination service is shutting down' });
        }
      }
    },
  };
}
