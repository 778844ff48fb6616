// The resume record: what a new control process needs to take over a mesh whose control process was
// killed (the applied files, the Services' addresses, each pod's uid, network and readiness), how it
// is written and how it is read back and checked.
import * as z from 'zod';
import { parseNetRecord, type NetRecord } from './net/index.js';
import type { ManifestSource } from './manifests/index.js';
import { readJson, type StatePaths } from './state.js';
import { podKey, type RunningPod } from './mesh-pods.js';
import { RuntimeCodes, RuntimeError } from './errors.js';

/** It holds the manifests' text (with their env values): written 0600, like state.json. */
const resumeRecord = z.object({
  version: z.literal(1),
  serviceCidr: z.string().optional(),
  sources: z.array(z.object({ path: z.string(), file: z.string(), text: z.string() })),
  vips: z.record(z.string(), z.string()),
  pods: z.array(
    z.object({
      key: z.string(),
      uid: z.string(),
      fingerprint: z.string(),
      netns: z.string(),
      /** Per-host: the simulated node it was placed on. */
      node: z.string().optional(),
      /** Per container name: whether it was ready. */
      ready: z.record(z.string(), z.boolean()),
    }),
  ),
});
export type ResumeRecord = z.output<typeof resumeRecord>;

/** The record of a mesh now. */
export function resumeRecordOf(m: {
  readonly serviceCidr: string | undefined;
  readonly sources: ReadonlyMap<string, ManifestSource>;
  readonly vips: Readonly<Record<string, string>>;
  readonly running: Iterable<RunningPod>;
}): ResumeRecord {
  return {
    version: 1,
    ...(m.serviceCidr !== undefined ? { serviceCidr: m.serviceCidr } : {}),
    sources: [...m.sources].map(([path, x]) => ({ path, file: x.file, text: x.text })),
    vips: { ...m.vips },
    pods: [...m.running].map((r) => ({
      key: podKey(r.plan),
      uid: r.uid,
      fingerprint: r.fingerprint,
      netns: r.net.netns,
      ...(r.node !== undefined ? { node: r.node } : {}),
      ready: Object.fromEntries(r.pp.status().containers.map((c) => [c.name, c.ready])),
    })),
  };
}

/** Reads the resume record and the network record; throws, naming the file, if either is missing or
 *  damaged. */
export async function readResumeRecords(paths: StatePaths): Promise<{ resume: ResumeRecord; net: NetRecord }> {
  const raw = await readJson(paths.resume);
  const missing = (file: string) =>
    new RuntimeError(RuntimeCodes.STATE_RECORD, `${file} is missing: the mesh cannot be resumed (run outrigger down)`);
  if (raw === undefined) throw missing(paths.resume);
  const parsed = resumeRecord.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const why = `${first?.path.join('.') ?? ''}: ${first?.message ?? ''}`;
    throw new RuntimeError(RuntimeCodes.STATE_RECORD, `${paths.resume} is damaged: ${why}`);
  }
  const netRaw = await readJson(paths.net);
  if (netRaw === undefined) throw missing(paths.net);
  return { resume: parsed.data, net: parseNetRecord(netRaw) };
}
