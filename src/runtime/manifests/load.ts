// Loading manifests: YAML files (one or more documents each) into typed, validated objects, or one
// ManifestError listing every problem in every file, each with file, document, kind/name, field and line.
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type * as z from 'zod';
import { editDistance, type AnnotationSite } from '../../manifests/annotations.js';
import {
  checkDeployment,
  checkMetadata,
  checkPodSpec,
  checkService,
  type CheckOptions,
  type Path,
} from '../../manifests/check.js';
import { describeValue, formatPath, ManifestError, type ManifestProblem } from '../../manifests/errors.js';
import { checkRoute, checkRouteReferences } from '../../manifests/routes.js';
import { POLICY_KINDS } from '../../manifests/policy.js';
import { checkPolicy, checkPolicyReferences } from '../../manifests/policy-check.js';
import { allowedFields, errorMessage, fieldsAt, KIND_NAMES, KINDS, type KindName } from '../../manifests/schema.js';
import type {
  DeploymentObject,
  GRPCRouteObject,
  HTTPRouteObject,
  ManifestObject,
  ManifestSet,
  NamespaceObject,
  PodObject,
  PolicyObject,
  RouteObject,
  ServiceAccountObject,
  ServiceObject,
  Source,
} from '../../manifests/types.js';

export interface LoadOptions {
  /** Namespaces that exist without a Namespace document (default: `default`). On a running mesh,
   *  pass the namespaces it already has. */
  readonly knownNamespaces?: readonly string[];
  /** Images the local runtime can run without a `command`: image reference → command (default: none). */
  readonly images?: Readonly<Record<string, readonly string[]>>;
}

export interface ManifestSource {
  /** The name used in messages, e.g. the path as the user typed it. */
  readonly file: string;
  readonly text: string;
}

/** Reads and loads files; all read errors and all manifest problems are thrown together. */
export async function loadManifestFiles(files: readonly string[], opts: LoadOptions = {}): Promise<ManifestSet> {
  const sources: ManifestSource[] = [];
  const unreadable: ManifestProblem[] = [];
  for (const file of files) {
    try {
      sources.push({ file, text: await readFile(file, 'utf8') });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      unreadable.push({ file, message: `cannot read: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}` });
    }
  }
  return parseManifests(sources, opts, unreadable);
}

/** Where a loaded document lives, to find the line of a field later. */
interface Located {
  readonly source: Source;
  readonly fileIndex: number;
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly kind?: string;
  readonly name?: string;
}

/** Loads manifests from text; throws ManifestError with every problem found. */
export function parseManifests(
  sources: readonly ManifestSource[],
  opts: LoadOptions = {},
  earlier: readonly ManifestProblem[] = [],
): ManifestSet {
  const checkOpts: CheckOptions = { images: opts.images ?? {} };
  const problems: (ManifestProblem & { fileIndex: number })[] = earlier.map((p) => ({ ...p, fileIndex: -1 }));
  const docs: Identified[] = [];

  const problemAt: ProblemAt = (at, path, message, line) => {
    problems.push({
      file: at.source.file,
      document: at.source.document,
      ...(at.kind !== undefined ? { kind: at.kind } : {}),
      ...(at.name !== undefined ? { name: at.name } : {}),
      path: formatPath(path),
      message,
      ...(line !== undefined ? { line } : lineField(at, path)),
      fileIndex: at.fileIndex,
    });
  };

  sources.forEach((src, fileIndex) => {
    const lines = new LineCounter();
    const yamlDocs = Array.from(parseAllDocuments(src.text, { lineCounter: lines, prettyErrors: false, merge: true }));
    yamlDocs.forEach((doc, i) => {
      const at: Located = { source: { file: src.file, document: i + 1 }, fileIndex, doc, lines };
      const d = loadDocument(doc, at, checkOpts, problemAt);
      if (d !== undefined) docs.push(d);
    });
  });

  checkAcrossDocuments(docs, opts, problemAt);

  if (problems.length > 0) {
    // File order, then document order; within a document, the order the checks found them.
    const sorted = problems
      .map((p, seq) => ({ p, seq }))
      .sort((a, b) => a.p.fileIndex - b.p.fileIndex || (a.p.document ?? 0) - (b.p.document ?? 0) || a.seq - b.seq)
      .map(({ p }) => {
        const { fileIndex: _, ...rest } = p;
        return rest;
      });
    throw new ManifestError(sorted);
  }

  const all = docs.flatMap((d) => (d.obj !== undefined ? [d.obj] : []));
  return {
    objects: all,
    namespaces: all.filter((o): o is NamespaceObject => o.kind === 'Namespace'),
    pods: all.filter((o): o is PodObject => o.kind === 'Pod'),
    deployments: all.filter((o): o is DeploymentObject => o.kind === 'Deployment'),
    services: all.filter((o): o is ServiceObject => o.kind === 'Service'),
    serviceAccounts: all.filter((o): o is ServiceAccountObject => o.kind === 'ServiceAccount'),
    httpRoutes: all.filter((o): o is HTTPRouteObject => o.kind === 'HTTPRoute'),
    grpcRoutes: all.filter((o): o is GRPCRouteObject => o.kind === 'GRPCRoute'),
    policies: all.filter((o): o is PolicyObject => POLICY_KIND_SET.has(o.kind)),
  };
}

/** Records a problem; the line is looked up from the path unless given. */
type ProblemAt = (at: Located, path: Path, message: string, line?: number) => void;

/** What identifies a document for cross-document checks, known even when the rest is invalid. */
interface Identified {
  readonly at: Located;
  readonly kind: KindName;
  readonly namespace: string | undefined; // undefined for a Namespace
  readonly name: string;
  readonly obj?: ManifestObject;
}

function loadDocument(doc: Document, at0: Located, opts: CheckOptions, problemAt: ProblemAt): Identified | undefined {
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      // The parser's message may end with its own "at line L, column C"; we give the line our way.
      const message = e.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? e.message;
      problemAt(at0, [], `invalid YAML: ${message}`, at0.lines.linePos(e.pos[0]).line);
    }
    return undefined;
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    problemAt(at0, [], `invalid YAML: ${(err as Error).message}`);
    return undefined;
  }
  if (raw === null || raw === undefined) return undefined; // an empty document, e.g. a trailing `---`
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problemAt(at0, [], `must be a mapping with apiVersion, kind and metadata, got ${describeValue(raw)}`);
    return undefined;
  }
  const fields = raw as Record<string, unknown>;
  const knownKinds = `known kinds: ${KIND_NAMES.join(', ')}`;
  if (typeof fields.kind !== 'string') {
    problemAt(
      at0,
      ['kind'],
      fields.kind === undefined ? `is required; ${knownKinds}` : `must be a string, got ${describeValue(fields.kind)}`,
    );
    return undefined;
  }
  if (!Object.hasOwn(KINDS, fields.kind)) {
    problemAt(at0, ['kind'], `unknown kind ${JSON.stringify(fields.kind)}; ${knownKinds}`);
    return undefined;
  }
  const kind = fields.kind as KindName;
  const spec = KINDS[kind];
  const ident = identify(fields.metadata, spec.namespaced);
  const at: Located = { ...at0, kind, ...(ident !== undefined ? { name: ident.display } : {}) };
  const identified = ident !== undefined ? { at, kind, namespace: ident.namespace, name: ident.name } : undefined;
  if (fields.apiVersion !== spec.apiVersion) {
    problemAt(
      at,
      ['apiVersion'],
      fields.apiVersion === undefined
        ? `is required: ${kind} is ${JSON.stringify(spec.apiVersion)}`
        : `must be ${JSON.stringify(spec.apiVersion)} for ${kind}, got ${describeValue(fields.apiVersion)}`,
    );
  }

  const report = (path: Path, message: string): void => problemAt(at, path, message);
  const parsed = spec.schema.safeParse(raw, { reportInput: true, error: errorMessage });
  if (!parsed.success) {
    reportSchemaIssues(parsed.error.issues, spec.schema, at, problemAt);
    // The rest of the document is not typed, but its annotations are worth checking now rather
    // than after the user fixes the first round (their values are strings or were just reported).
    checkMetadata(stringEntries(fields.metadata), ['metadata'], SITES[kind], report);
    if (kind === 'Deployment') {
      const template = (fields.spec as { template?: { metadata?: unknown } } | undefined)?.template;
      checkMetadata(stringEntries(template?.metadata), ['spec', 'template', 'metadata'], 'pod', report);
    }
    return identified;
  }

  const source = at.source;
  const data = parsed.data;
  let obj: ManifestObject;
  switch (data.kind) {
    case 'Namespace':
      obj = { ...data, source, mesh: checkMetadata(data.metadata, ['metadata'], 'namespace', report) };
      break;
    case 'Pod': {
      const mesh = checkMetadata(data.metadata, ['metadata'], 'pod', report);
      checkPodSpec(data.spec, ['spec'], opts, report);
      obj = { ...data, source, mesh };
      break;
    }
    case 'Deployment': {
      checkMetadata(data.metadata, ['metadata'], 'deployment', report);
      obj = { ...data, source, mesh: checkDeployment(data, opts, report) };
      break;
    }
    case 'Service': {
      const mesh = checkMetadata(data.metadata, ['metadata'], 'service', report);
      checkService(data, report);
      const ports = data.spec.ports.map((p) => ({ ...p, targetPort: p.targetPort ?? p.port }));
      obj = { ...data, spec: { ...data.spec, ports }, source, opaquePorts: mesh.opaquePorts ?? [] };
      break;
    }
    case 'ServiceAccount':
      checkMetadata(data.metadata, ['metadata'], 'serviceaccount', report);
      obj = { ...data, source };
      break;
    case 'HTTPRoute':
    case 'GRPCRoute': {
      checkMetadata(data.metadata, ['metadata'], 'route', report);
      const retry = checkRoute(data, report);
      obj = data.kind === 'HTTPRoute' ? { ...data, source, retry } : { ...data, source, retry };
      break;
    }
    case 'Server':
    case 'AuthorizationPolicy':
    case 'MeshTLSAuthentication':
    case 'NetworkAuthentication':
    case 'HTTPLocalRateLimitPolicy':
      checkMetadata(data.metadata, ['metadata'], 'policy', report);
      checkPolicy(data, report);
      obj = { ...data, source } as PolicyObject;
      break;
  }
  return { at, kind, namespace: ident?.namespace, name: ident?.name ?? data.metadata.name, obj };
}

const SITES: Record<KindName, AnnotationSite> = {
  Namespace: 'namespace',
  Pod: 'pod',
  Deployment: 'deployment',
  Service: 'service',
  ServiceAccount: 'serviceaccount',
  HTTPRoute: 'route',
  GRPCRoute: 'route',
  Server: 'policy',
  AuthorizationPolicy: 'policy',
  MeshTLSAuthentication: 'policy',
  NetworkAuthentication: 'policy',
  HTTPLocalRateLimitPolicy: 'policy',
};

const POLICY_KIND_SET: ReadonlySet<string> = new Set(Object.keys(POLICY_KINDS));

/** zod's issues as problems: one per unknown field (with a suggestion), and "is required" dropped
 *  where an unknown field next to it already says "did you mean" that field. */
function reportSchemaIssues(
  issues: readonly z.core.$ZodIssue[],
  schema: z.core.$ZodType,
  at: Located,
  problemAt: ProblemAt,
): void {
  const suggested = new Set<string>();
  const found: { path: Path; message: string }[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      const allowed = allowedFields(iss.input) ?? fieldsAt(schema, iss.path) ?? [];
      for (const key of iss.keys) {
        const near = nearestField(key, allowed);
        if (near !== undefined) suggested.add(formatPath([...iss.path, near]));
        found.push({
          path: [...iss.path, key],
          message:
            near !== undefined
              ? `unknown field; did you mean "${near}"?`
              : allowed.length > 0
                ? `unknown field; allowed here: ${allowed.join(', ')}`
                : 'unknown field',
        });
      }
      continue;
    }
    const input = 'input' in iss ? iss.input : undefined;
    found.push({
      path: iss.path,
      message: withValue(iss.message, iss.code, input, 'expected' in iss ? iss.expected : undefined),
    });
  }
  for (const f of found) {
    if (f.message === 'is required' && suggested.has(formatPath(f.path))) continue;
    problemAt(at, f.path, f.message);
  }
}

/** Duplicate objects (also among documents with other problems), namespaces, service accounts and
 *  the Services of routes that do not exist. */
function checkAcrossDocuments(docs: readonly Identified[], opts: LoadOptions, problemAt: ProblemAt): void {
  const seen = new Map<string, Source>();
  const namespaces = new Set(opts.knownNamespaces ?? ['default']);
  const accounts = new Set<string>();
  for (const d of docs) {
    if (d.kind === 'Namespace') namespaces.add(d.name);
    if (d.kind === 'ServiceAccount') accounts.add(`${d.namespace}/${d.name}`);
  }
  for (const d of docs) {
    const key = d.namespace === undefined ? d.name : `${d.namespace}/${d.name}`;
    const id = `${d.kind} ${key}`;
    const first = seen.get(id);
    if (first !== undefined) {
      const where =
        first.file === d.at.source.file ? `document ${first.document}` : `${first.file} document ${first.document}`;
      problemAt(d.at, ['metadata', 'name'], `duplicate ${d.kind} ${JSON.stringify(key)}: first defined in ${where}`);
    } else {
      seen.set(id, d.at.source);
    }
    if (d.namespace !== undefined && !namespaces.has(d.namespace)) {
      problemAt(
        d.at,
        ['metadata', 'namespace'],
        `namespace ${JSON.stringify(d.namespace)} does not exist: add a Namespace document for it`,
      );
    }
    const obj = d.obj;
    if (obj === undefined || (obj.kind !== 'Pod' && obj.kind !== 'Deployment')) continue;
    const [podSpec, path] =
      obj.kind === 'Pod' ? [obj.spec, ['spec']] : [obj.spec.template.spec, ['spec', 'template', 'spec']];
    const sa = podSpec.serviceAccountName;
    if (sa !== 'default' && !accounts.has(`${obj.metadata.namespace}/${sa}`)) {
      problemAt(
        d.at,
        [...path, 'serviceAccountName'],
        `service account ${JSON.stringify(sa)} does not exist in namespace ${JSON.stringify(obj.metadata.namespace)}: add a ServiceAccount document (only "default" exists implicitly)`,
      );
    }
  }

  // A Service whose document is invalid still exists for this check (its ports are not known, so
  // references to it are not checked further): one mistake, one message.
  const services = new Map<string, ServiceObject | undefined>();
  const routes: { route: RouteObject; at: Located }[] = [];
  for (const d of docs) {
    if (d.kind === 'Service') services.set(`${d.namespace}/${d.name}`, d.obj?.kind === 'Service' ? d.obj : undefined);
    if (d.obj?.kind === 'HTTPRoute' || d.obj?.kind === 'GRPCRoute') routes.push({ route: d.obj, at: d.at });
  }
  const where = new Map(routes.map((r) => [r.route, r.at]));
  checkRouteReferences(
    routes.map((r) => r.route),
    (ns, name) => {
      const key = `${ns}/${name}`;
      const svc = services.get(key);
      return { found: services.has(key), ...(svc !== undefined ? { service: svc } : {}) };
    },
    (route, path, message) => {
      const at = where.get(route);
      if (at !== undefined) problemAt(at, path, message);
    },
  );

  // Policy targets, authentications and the Servers of inbound routes (a document that failed its
  // schema still exists for these checks).
  const known = new Set(docs.map((d) => `${d.kind} ${d.namespace ?? ''}/${d.name}`));
  const policyAt = new Map<object, Located>();
  const policies: PolicyObject[] = [];
  for (const d of docs) {
    if (d.obj !== undefined && POLICY_KIND_SET.has(d.obj.kind)) {
      policies.push(d.obj as PolicyObject);
      policyAt.set(d.obj, d.at);
    }
  }
  for (const r of routes) policyAt.set(r.route, r.at);
  checkPolicyReferences(
    policies,
    routes.map((r) => r.route),
    (kind, ns, name) => known.has(`${kind} ${ns}/${name}`),
    (o, path, message) => {
      const at = policyAt.get(o);
      if (at !== undefined) problemAt(at, path, message);
    },
  );
}

// ---- message helpers ------------------------------------------------------------------------

function withValue(message: string, code: string, input: unknown, expected: unknown): string {
  if (code === 'invalid_type' && input === undefined) return message; // "is required"
  const primitive = input === null || ['string', 'number', 'boolean'].includes(typeof input);
  let out = message;
  if (primitive || code === 'invalid_type') out += `, got ${describeValue(input)}`;
  if (code === 'invalid_type' && expected === 'string' && (typeof input === 'number' || typeof input === 'boolean')) {
    // YAML reads `3306` and `true` as a number and a boolean; Kubernetes wants strings here.
    out += `; quote it: "${String(input)}"`;
  }
  return out;
}

/** The allowed field a misspelt one most likely meant: same letters in another case, or close. */
function nearestField(key: string, allowed: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  return (
    allowed.find((a) => a.toLowerCase() === lower) ??
    allowed.find((a) => key.length >= 4 && editDistance(a.toLowerCase(), lower) <= 2)
  );
}

/** The name and namespace of a document, from its raw metadata, if they are strings. */
function identify(
  metadata: unknown,
  namespaced: boolean,
): { name: string; namespace: string | undefined; display: string } | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const m = metadata as Record<string, unknown>;
  if (typeof m.name !== 'string') return undefined;
  if (!namespaced) return { name: m.name, namespace: undefined, display: m.name };
  const ns = typeof m.namespace === 'string' ? m.namespace : 'default';
  return { name: m.name, namespace: ns, display: `${ns}/${m.name}` };
}

/** Raw labels and annotations with only their string values (the others were reported already). */
function stringEntries(metadata: unknown): { labels: Record<string, string>; annotations: Record<string, string> } {
  const pick = (v: unknown): Record<string, string> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string'))
      : {};
  const m = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>) : {};
  return { labels: pick(m.labels), annotations: pick(m.annotations) };
}

// ---- line numbers ---------------------------------------------------------------------------

/** The 1-based line of the deepest part of `path` present in the document: the key's line for a map
 *  entry (where the value may start on a later line), the item's line for a list entry. */
function lineField(at: Located, path: Path): { line?: number } {
  let node: unknown = at.doc.contents;
  let offset: number | undefined = rangeStart(node);
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (pair === undefined) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset !== undefined ? { line: at.lines.linePos(offset).line } : {};
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node)) return undefined;
  const range = (node as { range?: readonly number[] }).range;
  return range?.[0];
}
