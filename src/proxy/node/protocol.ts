// The messages between the local runtime and a node proxy, over the node proxy's IPC channel (a pipe
// only its parent holds: nothing else on the machine can add a pod or hand it a socket). Node's
// child_process channel carries one listening socket per message, as a net.Server handle.

/** Which of a pod's three listeners a `listener` message carries. */
export type ListenerRole = 'outbound' | 'inbound' | 'admin';

export type RuntimeToNode =
  /** One of a pod's listening sockets (the message's handle), opened in the pod's network namespace. */
  | { readonly type: 'listener'; readonly pod: string; readonly role: ListenerRole }
  /** Serve the pod with these proxy flags (its sidecar's), on the three listeners sent before. */
  | { readonly type: 'add'; readonly pod: string; readonly args: readonly string[] }
  /** Drain the pod's connections and drop it, its key and certificate with it. */
  | { readonly type: 'remove'; readonly pod: string };

export type NodeToRuntime =
  /** The node proxy is up; its node-level admin server listens at admin. */
  | { readonly type: 'ready'; readonly node: string; readonly pid: number; readonly admin: string }
  /** The pod is served (its readiness is its admin view's /ready), or why not. */
  | { readonly type: 'added'; readonly pod: string; readonly error?: string }
  | { readonly type: 'removed'; readonly pod: string };

/** A message from the runtime as it came off the channel: checked, since a bad one must not crash the
 *  node proxy (it serves every pod of its node). */
export function parseRuntimeMessage(m: unknown): RuntimeToNode | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  if (typeof o['pod'] !== 'string' || o['pod'] === '') return undefined;
  const pod = o['pod'];
  switch (o['type']) {
    case 'listener':
      return o['role'] === 'outbound' || o['role'] === 'inbound' || o['role'] === 'admin'
        ? { type: 'listener', pod, role: o['role'] }
        : undefined;
    case 'add':
      return Array.isArray(o['args']) && o['args'].every((a) => typeof a === 'string')
        ? { type: 'add', pod, args: o['args'] as string[] }
        : undefined;
    case 'remove':
      return { type: 'remove', pod };
    default:
      return undefined;
  }
}
