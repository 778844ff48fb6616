// Objects to text for `kubectl apply -f -`: YAML documents separated by `---` (or one JSON List).
import { stringify } from 'yaml';

/** An object as `kubectl apply` takes it. */
export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
};

export function renderObjects(objects: readonly unknown[], output: 'yaml' | 'json'): string {
  if (output === 'json') return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2) + '\n';
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}
