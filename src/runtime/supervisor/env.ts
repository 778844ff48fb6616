// A container's environment as Kubernetes builds it: a small base (PATH, HOME, HOSTNAME), then `env`
// in order with `valueFrom.fieldRef` resolved and `$(VAR)` references expanded, which `command` and
// `args` may use too. The runtime's own environment is not passed on (a pod does not see the host's).
import type { EnvVar } from '../manifests/index.js';
import { internalError } from '../../core/errors.js';

/** What a fieldRef may ask for, known once the pod has its network. */
export interface PodFacts {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccountName: string;
  readonly nodeName: string;
  readonly podIP: string;
  /** The host's address as pods see it (the bridge's gateway address). */
  readonly hostIP: string;
}

export const FALLBACK_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The base every container gets: the host's PATH (a container runs a host command, so it finds what
 *  the host would), the locale, its home and the pod's hostname. */
export function baseEnv(
  hostEnv: NodeJS.ProcessEnv,
  o: { readonly hostname: string; readonly home: string },
): Record<string, string> {
  const env: Record<string, string> = { PATH: hostEnv.PATH ?? FALLBACK_PATH, HOME: o.home, HOSTNAME: o.hostname };
  for (const k of ['LANG', 'LC_ALL', 'TZ']) {
    const v = hostEnv[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

export function fieldValue(path: string, f: PodFacts): string {
  switch (path) {
    case 'metadata.name':
      return f.name;
    case 'metadata.namespace':
      return f.namespace;
    case 'metadata.uid':
      return f.uid;
    case 'spec.serviceAccountName':
      return f.serviceAccountName;
    case 'spec.nodeName':
      return f.nodeName;
    case 'status.podIP':
      return f.podIP;
    case 'status.hostIP':
      return f.hostIP;
    default:
      throw internalError(`unsupported fieldRef ${path}`); // the manifest schema allows only the above
  }
}

/** The container's environment: base, then each `env` entry in order, later ones overriding. */
export function containerEnv(
  base: Readonly<Record<string, string>>,
  vars: readonly EnvVar[],
  facts: PodFacts,
): Record<string, string> {
  const env: Record<string, string> = { ...base };
  for (const v of vars) {
    if (v.valueFrom !== undefined) env[v.name] = fieldValue(v.valueFrom.fieldRef.fieldPath, facts);
    else env[v.name] = expandVars(v.value ?? '', env);
  }
  return env;
}

/** Kubernetes' `$(VAR)` expansion: a defined variable is replaced; an undefined one, or an unclosed
 *  `$(`, is left as written; `$$` is an escaped `$` (so `$$(VAR)` yields the text `$(VAR)`). */
export function expandVars(input: string, env: Readonly<Record<string, string>>): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i];
    if (ch !== '$' || i + 1 >= input.length) {
      out += ch;
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close === -1) {
        out += '$(';
        i += 2;
      } else {
        const name = input.slice(i + 2, close);
        out += Object.hasOwn(env, name) ? env[name] : `$(${name})`;
        i = close + 1;
      }
    } else {
      out += '$';
      i++;
    }
  }
  return out;
}
