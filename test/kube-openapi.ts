// A small validator for the OpenAPI v3 subset CRD structural schemas use (what the API server checks
// on create: types, required, enum, bounds, lengths, patterns, item counts; unknown fields are pruned,
// not refused, so they are not errors here either). Written here rather than taken from a JSON Schema
// library so that the tests need no package beyond the project's own.
import type { JsonSchema } from '../src/kube/crds.js';

export function validateOpenApi(schema: JsonSchema, value: unknown, path = ''): string[] {
  const at = path === '' ? '/' : path;
  if (value === null) return schema.nullable === true ? [] : [`${at}: must not be null`];
  if (schema['x-kubernetes-int-or-string'] === true) {
    return Number.isInteger(value) || typeof value === 'string' ? [] : [`${at}: must be an integer or a string`];
  }
  const out: string[] = [];
  const t = schema.type;
  const actual = Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
  if (t !== undefined) {
    const fits = t === actual || (t === 'number' && actual === 'integer');
    if (!fits) return [`${at}: must be ${String(t)}, got ${actual}`];
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    out.push(`${at}: must be one of ${JSON.stringify(schema.enum)}`);
  if (typeof value === 'number') {
    if (
      typeof schema.minimum === 'number' &&
      (schema.exclusiveMinimum === true ? value <= schema.minimum : value < schema.minimum)
    )
      out.push(`${at}: below the minimum ${schema.minimum}`);
    if (
      typeof schema.maximum === 'number' &&
      (schema.exclusiveMaximum === true ? value >= schema.maximum : value > schema.maximum)
    )
      out.push(`${at}: above the maximum ${schema.maximum}`);
  }
  if (typeof value === 'string') {
    if (typeof schema.minLength === 'number' && value.length < schema.minLength)
      out.push(`${at}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && value.length > schema.maxLength)
      out.push(`${at}: longer than ${schema.maxLength}`);
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value))
      out.push(`${at}: does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems)
      out.push(`${at}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems)
      out.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.items !== undefined)
      value.forEach((v, i) => out.push(...validateOpenApi(schema.items as JsonSchema, v, `${path}/${i}`)));
  }
  if (actual === 'object') {
    const o = value as Record<string, unknown>;
    for (const r of (schema.required as string[] | undefined) ?? [])
      if (!(r in o)) out.push(`${path}/${r}: is required`);
    const props = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
    for (const [k, v] of Object.entries(o)) {
      const sub =
        props[k] ??
        (typeof schema.additionalProperties === 'object' ? (schema.additionalProperties as JsonSchema) : undefined);
      if (sub !== undefined) out.push(...validateOpenApi(sub, v, `${path}/${k}`));
    }
    if (typeof schema.minProperties === 'number' && Object.keys(o).length < schema.minProperties)
      out.push(`${at}: fewer than ${schema.minProperties} fields`);
  }
  return out;
}
