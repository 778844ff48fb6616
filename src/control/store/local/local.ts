// The local runtime's store: the runtime computes Services and pods from its manifests and running
// pods and hands over the whole picture with `replace`; readers get immutable snapshots.
import {
  byNamespaceName,
  type PodEntry,
  type PolicyEntries,
  type RouteEntry,
  type ServiceEntry,
  type Store,
  type StoreSnapshot,
} from '../store.js';

/** What the runtime hands over: every Service and every pod, as they are now. */
export interface StoreContent {
  readonly services: readonly ServiceEntry[];
  readonly pods: readonly PodEntry[];
  /** Absent: no routes. Sorted here by namespace and name, as the snapshot promises. */
  readonly routes?: readonly RouteEntry[];
  /** Absent: no policy objects. */
  readonly policy?: PolicyEntries;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class LocalStore implements Store {
  private current: StoreSnapshot;
  private readonly subscribers = new Set<(s: StoreSnapshot) => void>();

  constructor(initial: StoreContent = { services: [], pods: [] }) {
    this.current = LocalStore.freeze(0, initial);
  }

  /** A copy (the caller may go on changing its objects), frozen so no reader can change it either. */
  private static freeze(version: number, content: StoreContent): StoreSnapshot {
    const snapshot: StoreSnapshot = {
      version,
      services: structuredClone(content.services),
      pods: structuredClone(content.pods),
      ...(content.policy !== undefined ? { policy: structuredClone(content.policy) } : {}),
    };
    if (content.routes !== undefined && content.routes.length > 0) {
      const routes = structuredClone(content.routes) as RouteEntry[];
      routes.sort(byNamespaceName);
      return deepFreeze({ ...snapshot, routes });
    }
    return deepFreeze(snapshot);
  }

  snapshot(): StoreSnapshot {
    return this.current;
  }

  subscribe(fn: (s: StoreSnapshot) => void): () => void {
    // A wrapper, so that subscribing the same function twice gives two independent subscriptions.
    const entry = (s: StoreSnapshot) => fn(s);
    this.subscribers.add(entry);
    return () => void this.subscribers.delete(entry);
  }

  /**
   * Replaces everything with `content` (copied), bumps the version and calls every subscriber before
   * returning. A subscriber that throws does not keep the others from being called; the first error is
   * thrown from here afterwards, since it is a bug of the caller's process.
   */
  replace(content: StoreContent): StoreSnapshot {
    const next = LocalStore.freeze(this.current.version + 1, content);
    this.current = next;
    let failure: { err: unknown } | undefined;
    for (const fn of [...this.subscribers]) {
      try {
        fn(next);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
    return next;
  }
}
