// Labels and selectors: Kubernetes' syntax rules for label keys and values (and annotation keys), and
// matching a Service's map selector or a label selector (a Deployment's, a Server's) against a pod's
// labels: the one implementation the runtime, the control plane and observe share.

/** A label selector as the manifests' schema and the control plane's store both hold it. */
export interface LabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly {
    readonly key: string;
    readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    readonly values: readonly string[];
  }[];
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A qualified name (`app`, `app.kubernetes.io/name`): the syntax of label and annotation keys.
 *  Returns a message, or undefined when valid. */
export function checkQualifiedName(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix))) {
    return 'key prefix must be a DNS subdomain (lowercase letters, digits, - and .)';
  }
  if (name.length === 0 || name.length > 63 || !NAME.test(name)) {
    return "key must be at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS prefix and '/'";
  }
  return undefined;
}

/** A label value: empty, or at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric. */
export function checkLabelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63 || !NAME.test(value)) {
    return "value must be at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit";
  }
  return undefined;
}

/** A Service selector: every pair must be present. An empty selector selects nothing (Kubernetes'
 *  Services without a selector have no automatic endpoints). */
export function matchesMap(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => labels[k] === v);
}

/** A label selector (matchLabels and matchExpressions, ANDed): a Deployment's, a Server's podSelector. */
export function matchesSelector(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels)) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || value === undefined || !e.values.includes(value)) return false;
        break;
      case 'NotIn':
        if (has && value !== undefined && e.values.includes(value)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}
