// The record of what the pod network created on this machine, written before each change (write-ahead)
// so that `down` after a crash, or after the control process was killed, can remove all of it.
// It holds no secrets; the caller stores it as JSON in the state directory.
import * as z from 'zod';
import { RuntimeCodes, RuntimeError } from '../errors.js';

const podRecord = z.object({
  /** `namespace/name` of the pod, for messages. */
  pod: z.string(),
  netns: z.string(),
  veth: z.string(),
  ip: z.string(),
  /** /etc/netns/<netns>: the pod's hosts and resolv.conf. */
  etcDir: z.string(),
});

const netRecord = z.object({
  version: z.literal(1),
  bridge: z.string(),
  podCidr: z.string(),
  gateway: z.string(),
  /** The iptables command used on the host and in pods (its -restore sibling too). */
  iptables: z.string(),
  /** Usually /etc/netns; where the per-namespace /etc files live. */
  etcNetnsDir: z.string(),
  /** The host filter-table chain that keeps pod traffic on the bridge. */
  forwardChain: z.string(),
  pods: z.array(podRecord),
});

export type PodNetRecord = z.output<typeof podRecord>;
export type NetRecord = z.output<typeof netRecord>;

/** Reads a record back (e.g. from JSON on disk); throws with the field at fault if it is damaged. */
export function parseNetRecord(data: unknown): NetRecord {
  const r = netRecord.safeParse(data);
  if (!r.success) {
    const first = r.error.issues[0];
    const why = `${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}`;
    throw new RuntimeError(RuntimeCodes.STATE_RECORD, `network record is damaged: ${why}`);
  }
  return r.data;
}
