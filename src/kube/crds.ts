// CustomResourceDefinitions generated from the zod schemas the manifests are validated with, so that
// what the API server accepts and what Outrigger accepts have one source of truth. zod 4 gives a JSON
// Schema (OpenAPI 3.0 flavour); Kubernetes wants a *structural* schema (every node typed, no $ref, no
// additionalProperties beside properties, unions only as value checks, RE2 patterns), so `structural`
// rewrites what it refuses. See
// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
import { z } from 'zod';
import { internalError } from '../core/errors.js';

export type JsonSchema = Record<string, unknown>;

export interface PrinterColumn {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** A simple JSONPath into the object, e.g. `.spec.port`. */
  readonly jsonPath: string;
  readonly description?: string;
  readonly priority?: number;
}

/** One custom kind: adding a kind to the install is one entry of this shape. */
export interface CrdKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly plural: string;
  readonly shortNames?: readonly string[];
  /** The zod schema of a whole document (apiVersion, kind, metadata, spec), or of its spec alone. */
  readonly schema: z.ZodType;
  readonly printerColumns?: readonly PrinterColumn[];
  readonly description?: string;
}

const DROP = new Set([
  '$schema',
  'id',
  '$id',
  'propertyNames',
  'patternProperties',
  'uniqueItems',
  'examples',
  'readOnly',
  'writeOnly',
  'contentEncoding',
  'contentMediaType',
  '$comment',
]);
/** zod's bounds for a plain z.number() / z.int(): no bound at all for Kubernetes. */
const SAFE = Number.MAX_SAFE_INTEGER;

function typeOf(s: JsonSchema): string | undefined {
  if (typeof s.type === 'string') return s.type;
  if (Array.isArray(s.enum) && s.enum.length > 0) {
    const t = typeof s.enum[0];
    return t === 'number' ? (s.enum.every((v) => Number.isInteger(v)) ? 'integer' : 'number') : t;
  }
  return undefined;
}

/** RE2 (what the API server runs) has no lookaround and no backreferences. */
function re2Compatible(pattern: string): boolean {
  return !/\(\?[=!<]|\\[1-9]|\\k</.test(pattern);
}

function resolveRef(ref: string, defs: Record<string, JsonSchema>): JsonSchema {
  const name = ref.replace(/^#\/(\$defs|definitions)\//, '');
  const d = defs[name];
  if (d === undefined) throw internalError(`crd schema: unresolved $ref ${ref}`);
  return d;
}

function mergeObjects(options: JsonSchema[]): JsonSchema {
  const properties: Record<string, JsonSchema[]> = {};
  let required: string[] | undefined;
  for (const o of options) {
    for (const [k, v] of Object.entries((o.properties as Record<string, JsonSchema> | undefined) ?? {}))
      (properties[k] ??= []).push(v);
    const req = (o.required as string[] | undefined) ?? [];
    required = required === undefined ? [...req] : required.filter((r) => req.includes(r));
  }
  const out: JsonSchema = {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(properties).map(([k, vs]) => [k, vs.length === 1 ? vs[0] : union(vs)]),
    ),
  };
  if (required !== undefined && required.length > 0) out.required = required;
  return out;
}

/** A union of already structural schemas as one structural schema (looser than the union: the
 *  control plane's own validation stays the strict check). */
function union(options: JsonSchema[]): JsonSchema {
  const nullable = options.some((o) => o.type === 'null' || o.nullable === true);
  const opts = options.filter((o) => o.type !== 'null');
  const types = new Set(opts.map(typeOf));
  let out: JsonSchema;
  if (opts.length === 1) out = { ...(opts[0] as JsonSchema) };
  else if (types.size === 1 && opts.every((o) => Array.isArray(o.enum)))
    out = { type: [...types][0], enum: [...new Set(opts.flatMap((o) => o.enum as unknown[]))] };
  else if (types.size === 1 && types.has('object')) out = mergeObjects(opts);
  else if (types.size === 1 && types.has('array'))
    out = {
      type: 'array',
      items: union(
        opts.map((o) => (o.items as JsonSchema | undefined) ?? { 'x-kubernetes-preserve-unknown-fields': true }),
      ),
    };
  else if (types.size === 1 && types.has('string')) out = { type: 'string' };
  else if (types.size === 1) out = { type: [...types][0] };
  else if ([...types].every((t) => t === 'integer' || t === 'string')) out = { 'x-kubernetes-int-or-string': true };
  else out = { 'x-kubernetes-preserve-unknown-fields': true };
  if (nullable) out.nullable = true;
  return out;
}

/** Rewrites one JSON Schema node (recursively) into a structural schema node. */
export function structural(node: JsonSchema, defs: Record<string, JsonSchema> = {}): JsonSchema {
  if (typeof node.$ref === 'string') {
    const { $ref, ...rest } = node;
    return structural({ ...resolveRef($ref as string, defs), ...rest }, defs);
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(node[key])) {
      const { [key]: options, ...rest } = node;
      const merged = union((options as JsonSchema[]).map((o) => structural(o, defs)));
      return structural({ ...rest, ...merged }, defs);
    }
  }
  if (Array.isArray(node.allOf)) {
    const { allOf, ...rest } = node;
    const parts = (allOf as JsonSchema[]).map((o) => structural(o, defs));
    const objects = parts.filter((p) => p.type === 'object');
    const merged =
      objects.length === parts.length
        ? {
            type: 'object',
            properties: Object.assign({}, ...objects.map((o) => o.properties ?? {})) as JsonSchema,
            required: [...new Set(objects.flatMap((o) => (o.required as string[] | undefined) ?? []))],
          }
        : (parts[0] ?? {});
    return structural({ ...rest, ...merged }, defs);
  }
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(node)) {
    if (DROP.has(k) || k === '$defs' || k === 'definitions') continue;
    if (k === 'const') {
      out.enum = [v];
      continue;
    }
    if ((k === 'maximum' && v === SAFE) || (k === 'minimum' && v === -SAFE)) continue;
    if (k === 'pattern' && typeof v === 'string' && !re2Compatible(v)) continue;
    if (k === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(v as Record<string, JsonSchema>).map(([p, s]) => [p, structural(s, defs)]),
      );
      continue;
    }
    if (k === 'items') {
      out.items = Array.isArray(v)
        ? union((v as JsonSchema[]).map((s) => structural(s, defs)))
        : structural(v as JsonSchema, defs);
      continue;
    }
    if (k === 'additionalProperties') {
      if (typeof v === 'object' && v !== null && node.properties === undefined)
        out.additionalProperties = structural(v as JsonSchema, defs);
      continue; // `false` (zod's strict objects) is not allowed; unknown fields are pruned instead.
    }
    if (k === 'required' && Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  if (
    out.type === undefined &&
    out['x-kubernetes-int-or-string'] === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] === undefined
  ) {
    const t = typeOf(out);
    if (t !== undefined) out.type = t;
    else out['x-kubernetes-preserve-unknown-fields'] = true;
  }
  if (out.type === 'object' && out.properties === undefined && out.additionalProperties === undefined)
    out['x-kubernetes-preserve-unknown-fields'] = true;
  if (out.type === 'array' && out.items === undefined) out.items = { 'x-kubernetes-preserve-unknown-fields': true };
  if (typeof out.type !== 'string' && out.type !== undefined) out.type = 'string';
  return out;
}

/** The spec's structural schema from a zod schema of a document (or of a spec). */
export function specSchema(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'any',
    reused: 'inline',
  }) as JsonSchema;
  const defs = {
    ...((json.$defs as Record<string, JsonSchema> | undefined) ?? {}),
    ...((json.definitions as Record<string, JsonSchema> | undefined) ?? {}),
  };
  const root = structural(json, defs);
  const props = root.properties as Record<string, JsonSchema> | undefined;
  return props?.spec !== undefined && props.kind !== undefined ? props.spec : root;
}

export function crdName(k: CrdKind): string {
  return `${k.plural}.${k.group}`;
}

/** The CustomResourceDefinition for one kind. */
export function crd(k: CrdKind, labels: Record<string, string> = {}): Record<string, unknown> {
  const spec = specSchema(k.schema);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: crdName(k), labels },
    spec: {
      group: k.group,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.kind.toLowerCase(),
        ...(k.shortNames !== undefined ? { shortNames: [...k.shortNames] } : {}),
        categories: ['outrigger'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: k.version,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              ...(k.description !== undefined ? { description: k.description } : {}),
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
              },
            },
          },
          additionalPrinterColumns: [
            ...(k.printerColumns ?? []),
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
        },
      ],
    },
  };
}
