// `outrigger inject` on manifests: every workload in a YAML (or JSON) stream gets what the webhook
// would give its pods, so that `outrigger inject app.yaml | kubectl apply -f -` works where the webhook
// is not wanted (or to see what it would do). Documents that are not workloads pass through unchanged.
import { parseAllDocuments } from 'yaml';
import { applyOps, injectObject, type InjectConfig, type Json } from './inject.js';

export interface OfflineResult {
  readonly objects: unknown[];
  /** One line per workload: what was done and why. */
  readonly report: string[];
}

export function injectManifests(text: string, cfg: InjectConfig): OfflineResult {
  const docs = parseAllDocuments(text);
  const objects: unknown[] = [];
  const report: string[] = [];
  const one = (o: unknown): unknown => {
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return o;
    const j = o as Json;
    if (j.kind === 'List' && Array.isArray(j.items)) return { ...j, items: j.items.map(one) };
    const name = `${String(j.kind ?? '?').toLowerCase()}/${String((j.metadata as Json | undefined)?.name ?? '?')}`;
    const { ops, decision } = injectObject(j, {}, cfg, 'offline');
    if (!decision.inject) {
      if (!decision.reason.startsWith('kind ')) report.push(`${name} skipped: ${decision.reason}`);
      return o;
    }
    report.push(`${name} injected`);
    return applyOps(j, ops);
  };
  for (const [i, d] of docs.entries()) {
    if (d.errors.length > 0) throw new Error(`document ${i + 1}: ${d.errors[0]?.message ?? 'not valid YAML'}`);
    const value: unknown = d.toJS();
    if (value === null || value === undefined) continue;
    objects.push(one(value));
  }
  return { objects, report };
}
