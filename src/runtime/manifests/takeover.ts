// `apply` semantics across files, as kubectl's: an object is known by its kind, namespace and name, not
// by the file it came from. When a newly applied file holds an object that an earlier file defined,
// the new file takes it over: the object's document is cut from the earlier file's text, so the two do
// not clash as duplicates, and a later apply of the earlier file alone would not bring the old version
// back without saying so in that file.
import { parseAllDocuments } from 'yaml';
import type { ManifestSource } from './load.js';

/** `Kind/namespace/name` of each document that names itself (unparseable ones are left to the loader). */
function documentKeys(text: string): (string | undefined)[] {
  return parseAllDocuments(text).map((d) => {
    const v = d.toJS({ maxAliasCount: 100 }) as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
    if (v === null || typeof v !== 'object' || typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') return undefined;
    const ns = v.kind === 'Namespace' ? '' : typeof v.metadata.namespace === 'string' ? v.metadata.namespace : 'default';
    return `${v.kind}/${ns}/${v.metadata.name}`;
  });
}

/**
 * The sources to load after applying `applied` (by path) over `earlier` (by path): the applied files
 * replace theirs whole, and every other earlier file loses the documents the applied files now hold.
 * Returns the new sources and what was taken over, as `Kind/namespace/name from <file>`.
 */
export function takeOver(
  earlier: ReadonlyMap<string, ManifestSource>,
  applied: ReadonlyMap<string, ManifestSource>,
): { sources: Map<string, ManifestSource>; moved: string[] } {
  const claimed = new Set<string>();
  for (const src of applied.values()) {
    try {
      for (const k of documentKeys(src.text)) if (k !== undefined) claimed.add(k);
    } catch {
      // not YAML at all: the loader reports it
    }
  }
  const sources = new Map<string, ManifestSource>();
  const moved: string[] = [];
  for (const [path, src] of earlier) {
    if (applied.has(path)) continue;
    let docs;
    try {
      docs = parseAllDocuments(src.text);
    } catch {
      sources.set(path, src);
      continue;
    }
    const keys = documentKeys(src.text);
    const keep = docs.filter((_, i) => {
      const k = keys[i];
      if (k === undefined || !claimed.has(k)) return true;
      moved.push(`${k} from ${src.file}`);
      return false;
    });
    if (keep.length === docs.length) sources.set(path, src);
    else if (keep.length > 0) sources.set(path, { file: src.file, text: keep.map((d) => d.toString()).join('---\n') });
  }
  for (const [path, src] of applied) sources.set(path, src);
  return { sources, moved };
}
