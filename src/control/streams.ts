// Server-streaming watches whose every message is a whole answer computed from the store (a snapshot,
// not a diff: a client that missed anything is corrected by the next message, and a reconnecting one
// needs no resume point). The destination and policy services are both made of this: each stream gets
// its answer at once, then again after store changes (coalesced for a few ms, so a burst of changes is
// one message), and only when it differs from what that stream last received. Streams watching the
// same key share one computed answer per change. An answer may instead be a refusal (an AccessError):
// the stream then ends with its status, at once or at the change that made it one.
import grpc from '@grpc/grpc-js';
import { AccessError } from './access.js';
import type { Store, StoreSnapshot } from './store/store.js';

export interface SnapshotStreamsOptions<K, Res> {
  readonly store: Store;
  /** The service's name, for the message a stream ends with when the service closes. */
  readonly service: string;
  /** How long after a store change the answers are recomputed (ms). Default 25. */
  readonly coalesceMs?: number;
  /** The answer for one key; throws an AccessError to end the stream with its status instead. */
  answer(snapshot: StoreSnapshot, key: K): Res;
  /** A stream's failure (not its client's normal end). */
  onError(err: Error, key: K): void;
}

interface Watcher<K, Res> {
  readonly call: grpc.ServerWritableStream<unknown, Res>;
  readonly key: K;
  /** The key as text: watchers of the same key share one computed answer per refresh. */
  readonly keyText: string;
  /** The JSON of the last answer written, to skip identical ones. */
  sent: string;
  /** The stream's buffer is full: the latest answer is written on 'drain' (older ones are moot). */
  blocked: boolean;
}

export interface SnapshotStreams<K, Res> {
  /** Serves `call` the answers for `key` until it ends. */
  open(call: grpc.ServerWritableStream<unknown, Res>, key: K): void;
  /** True (having ended the call with UNAVAILABLE) when the service is closed. */
  refuseIfClosed(call: grpc.ServerWritableStream<unknown, Res>): boolean;
  /** Streams open now. */
  watchers(): number;
  /** Ends every stream with UNAVAILABLE (so clients reconnect elsewhere or later) and stops listening
   *  to the store. */
  close(): void;
}

type Computed<Res> = { answer: Res; json: string } | { refused: AccessError };

export function snapshotStreams<K, Res>(o: SnapshotStreamsOptions<K, Res>): SnapshotStreams<K, Res> {
  const coalesceMs = o.coalesceMs ?? 25;
  const watchers = new Set<Watcher<K, Res>>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const closing = () => ({ code: grpc.status.UNAVAILABLE, details: `${o.service} is shutting down` });

  const push = (w: Watcher<K, Res>, shared?: Map<string, Computed<Res>>): void => {
    if (w.blocked || w.call.cancelled || w.call.writableEnded) return;
    let a = shared?.get(w.keyText);
    if (a === undefined) {
      try {
        const answer = o.answer(o.store.snapshot(), w.key);
        a = { answer, json: JSON.stringify(answer) };
      } catch (err) {
        if (!(err instanceof AccessError)) throw err;
        a = { refused: err };
      }
      shared?.set(w.keyText, a);
    }
    if ('refused' in a) {
      watchers.delete(w);
      w.call.emit('error', { code: a.refused.status, details: `${a.refused.message} [${a.refused.code}]` });
      return;
    }
    if (a.json === w.sent) return;
    w.sent = a.json;
    if (!w.call.write(a.answer)) w.blocked = true;
  };

  const refresh = (): void => {
    timer = undefined;
    const shared = new Map<string, Computed<Res>>();
    for (const w of watchers) push(w, shared);
  };

  const unsubscribe = o.store.subscribe(() => {
    if (timer === undefined && !closed) timer = setTimeout(refresh, coalesceMs);
  });

  return {
    open(call, key) {
      const w: Watcher<K, Res> = { call, key, keyText: JSON.stringify(key), sent: '', blocked: false };
      watchers.add(w);
      const done = () => watchers.delete(w);
      call.on('cancelled', done);
      call.on('close', done);
      call.on('finish', done);
      call.on('error', (err: Error) => {
        done();
        o.onError(err, key);
      });
      call.on('drain', () => {
        w.blocked = false;
        push(w);
      });
      push(w);
    },
    refuseIfClosed(call) {
      if (closed) call.emit('error', closing());
      return closed;
    },
    watchers: () => watchers.size,
    close() {
      if (closed) return;
      closed = true;
      unsubscribe();
      if (timer !== undefined) clearTimeout(timer);
      for (const w of [...watchers]) {
        watchers.delete(w);
        if (!w.call.cancelled && !w.call.writableEnded) w.call.emit('error', closing());
      }
    },
  };
}
