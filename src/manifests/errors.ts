// Manifest problems and the one error that carries them all: every problem found in one pass is
// reported together, each naming the file, the document (with its kind and name) and the field path.
import { OutriggerError } from '../core/errors.js';

/** Where a problem is, as precisely as we know it, and what is wrong. */
export interface ManifestProblem {
  /** The file as the caller named it (e.g. `examples/web.yaml`). */
  readonly file: string;
  /** 1-based index of the YAML document in the file; absent for problems with the whole file. */
  readonly document?: number;
  readonly kind?: string;
  /** `namespace/name` for namespaced kinds, `name` for Namespace. */
  readonly name?: string;
  /** Field path such as `spec.ports[0].port`; absent for problems with the whole document. */
  readonly path?: string;
  readonly message: string;
  /** 1-based line in the file, when the YAML node could be found. */
  readonly line?: number;
}

/** `examples/web.yaml: document 2 (Service default/web): spec.ports[0].port: must be ..., got 70000 (line 14)` */
export function formatProblem(p: ManifestProblem): string {
  let where = p.file;
  if (p.document !== undefined) {
    where += `: document ${p.document}`;
    if (p.kind !== undefined) where += ` (${p.kind}${p.name !== undefined ? ` ${p.name}` : ''})`;
  }
  const field = p.path !== undefined && p.path !== '' ? `${p.path}: ` : '';
  const line = p.line !== undefined ? ` (line ${p.line})` : '';
  return `${where}: ${field}${p.message}${line}`;
}

export const ManifestCodes = {
  /** Manifests that cannot be used: every problem, with file, document, object, field and line. */
  MANIFEST: 'OUTR_ERR_MANIFEST',
} as const;

/** Thrown when manifests are invalid; `problems` holds every problem found, in file order. */
export class ManifestError extends OutriggerError {
  readonly problems: readonly ManifestProblem[];

  constructor(problems: readonly ManifestProblem[]) {
    const n = problems.length;
    super(
      ManifestCodes.MANIFEST,
      `${n} problem${n === 1 ? '' : 's'} in manifests:\n` + problems.map((p) => `  ${formatProblem(p)}`).join('\n'),
    );
    this.name = 'ManifestError';
    this.problems = problems;
  }
}

/** Renders a field path: `spec.ports[0].port`, and keys that are not identifiers in brackets:
 *  `metadata.annotations["config.outrigger.io/opaque-ports"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** A short description of a value for "got ..." in messages: `70000`, `"abc"`, `boolean true`, `a list`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'an empty value (null)';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return typeof v;
}
