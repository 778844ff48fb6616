// `apply` semantics across files, as kubectl's: an object is known by its kind, namespace and name, not
// by the file it came from. When a newly applied file holds an object that an earlier file defined,
// the new file takes it over: the object's document is cut from the earlier file's text, so the two do
// not clash as duplicates, and a later apply of the earlier file alone would not bring the old version
// back without saying so in that file. And so a file is checked against the running mesh, never on its
// own: it may refer to objects that earlier files hold.
import { parseAllDocuments } from 'yaml';
import { parseManifests, type LoadOptions, type ManifestSource } from './load.js';
import type { ManifestSet } from '../../manifests/types.js';

/** An object as a user names it, the way apply's progress lines name pods and Services: the kind in
 *  lower case, then `namespace/name` (`httproute shop/web`), or the name alone for a Namespace. */
export function objectName(kind: string, namespace: string | undefined, name: string): string {
  return `${kind.toLowerCase()} ${namespace === undefined || namespace === '' ? name : `${namespace}/${name}`}`;
}

/** `Kind/namespace/name` of each document that names itself (unparseable ones are left to the loader),
 *  with the object's name for messages. */
function documentKeys(text: string): ({ key: string; display: string } | undefined)[] {
  return parseAllDocuments(text).map((d) => {
    type Raw = { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
    const v = d.toJS({ maxAliasCount: 100 }) as Raw;
    if (v === null || typeof v !== 'object' || typeof v.kind !== 'string') return undefined;
    if (typeof v.metadata?.name !== 'string') return undefined;
    const ns =
      v.kind === 'Namespace' ? '' : typeof v.metadata.namespace === 'string' ? v.metadata.namespace : 'default';
    return { key: `${v.kind}/${ns}/${v.metadata.name}`, display: objectName(v.kind, ns, v.metadata.name) };
  });
}

/**
 * The sources to load after applying `applied` (by path) over `earlier` (by path): the applied files
 * replace theirs whole, and every other earlier file loses the documents the applied files now hold.
 * Returns the new sources and what was taken over, as `httproute shop/web from <file>` (objectName).
 */
export function takeOver(
  earlier: ReadonlyMap<string, ManifestSource>,
  applied: ReadonlyMap<string, ManifestSource>,
): { sources: Map<string, ManifestSource>; moved: string[] } {
  const claimed = new Set<string>();
  for (const src of applied.values()) {
    try {
      for (const k of documentKeys(src.text)) if (k !== undefined) claimed.add(k.key);
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
      if (k === undefined || !claimed.has(k.key)) return true;
      moved.push(`${k.display} from ${src.file}`);
      return false;
    });
    if (keep.length === docs.length) sources.set(path, src);
    else if (keep.length > 0) sources.set(path, { file: src.file, text: keep.map((d) => d.toString()).join('---\n') });
  }
  for (const [path, src] of applied) sources.set(path, src);
  return { sources, moved };
}

/**
 * What an apply of `applied` makes of a mesh that holds `earlier`: the files after takeOver, loaded and
 * checked together, so that the applied files may name objects (Namespaces, Services, Servers,
 * ServiceAccounts...) that earlier files hold, and an object they hold replaces the earlier version.
 * Throws ManifestError, naming the file and field, for a reference that nothing holds.
 */
export function applyOver(
  earlier: ReadonlyMap<string, ManifestSource>,
  applied: ReadonlyMap<string, ManifestSource>,
  opts: LoadOptions = {},
): { sources: Map<string, ManifestSource>; moved: string[]; set: ManifestSet } {
  const { sources, moved } = takeOver(earlier, applied);
  return { sources, moved, set: parseManifests([...sources.values()], opts) };
}
