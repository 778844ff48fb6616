// Rules a schema cannot state: ones that span fields of one document (unique names, named ports that
// must exist, a selector that must match its template, a command or a known image). Each rule reports
// through `report` with the field path, so every problem is found in one pass.
import { readMeshAnnotations, type AnnotationSite, type MeshAnnotations } from './annotations.js';
import { checkLabelValue, checkQualifiedName, matchesSelector } from './labels.js';
import type { DeploymentDoc, PodSpec, Probe, ServiceDoc } from './schema.js';
import { parseCpu, parseMemory } from './quantity.js';
import { CAPABILITIES } from './security.js';

export type Path = readonly PropertyKey[];
export type Report = (path: Path, message: string) => void;

export interface CheckOptions {
  /** Images the local runtime can run without a `command`: image reference → command. */
  readonly images: Readonly<Record<string, readonly string[]>>;
}

/** Label and annotation keys and values, and our annotations; returns the parsed mesh annotations. */
export function checkMetadata(
  meta: { labels: Record<string, string>; annotations: Record<string, string> },
  base: Path,
  site: AnnotationSite,
  report: Report,
): MeshAnnotations {
  for (const [k, v] of Object.entries(meta.labels)) {
    const problem = checkQualifiedName(k) ?? checkLabelValue(v);
    if (problem !== undefined)
      report([...base, 'labels', k], `${problem}, got ${JSON.stringify(problem.startsWith('value') ? v : k)}`);
  }
  for (const k of Object.keys(meta.annotations)) {
    const problem = checkQualifiedName(k);
    if (problem !== undefined) report([...base, 'annotations', k], `${problem}, got ${JSON.stringify(k)}`);
  }
  const { mesh, issues } = readMeshAnnotations(meta.annotations, site);
  for (const i of issues) report([...base, 'annotations', i.key], i.message);
  return mesh;
}

/** Containers, ports and probes of a pod (or pod template); fills in `command` from a known image. */
export function checkPodSpec(spec: PodSpec, base: Path, opts: CheckOptions, report: Report): void {
  const containerNames = new Map<string, number>();
  const portNames = new Map<string, string>();
  spec.containers.forEach((c, i) => {
    const at = [...base, 'containers', i];
    const first = containerNames.get(c.name);
    if (first !== undefined)
      report([...at, 'name'], `duplicate container name "${c.name}" (also containers[${first}])`);
    else containerNames.set(c.name, i);

    if (c.command !== undefined && c.command.length === 0) {
      report([...at, 'command'], 'must not be empty: it is the program the container runs');
    } else if (c.command === undefined) {
      const known = c.image !== undefined ? opts.images[c.image] : undefined;
      if (known !== undefined) {
        c.command = [...known];
      } else {
        const knownList = Object.keys(opts.images);
        const also = knownList.length > 0 ? ` (images it knows: ${knownList.join(', ')})` : '';
        report(
          [...at, 'command'],
          c.image === undefined
            ? 'is required: the local runtime runs a host command instead of an image'
            : `is required: the local runtime cannot run image "${c.image}"${also}; add a command (the image is then ignored)`,
        );
      }
    }

    const ownPorts = new Set<string>();
    const numbers = new Map<string, number>();
    c.ports.forEach((p, j) => {
      const key = `${p.containerPort}/${p.protocol}`;
      const dup = numbers.get(key);
      if (dup !== undefined) report([...at, 'ports', j, 'containerPort'], `duplicate port ${key} (also ports[${dup}])`);
      else numbers.set(key, j);
      if (p.name === undefined) return;
      const owner = portNames.get(p.name);
      if (owner !== undefined)
        report(
          [...at, 'ports', j, 'name'],
          `duplicate port name "${p.name}" in the pod (also in container "${owner}")`,
        );
      else portNames.set(p.name, c.name);
      ownPorts.add(p.name);
    });

    if (c.readinessProbe !== undefined)
      checkProbe(c.readinessProbe, [...at, 'readinessProbe'], c.name, ownPorts, report);
    if (c.livenessProbe !== undefined) checkProbe(c.livenessProbe, [...at, 'livenessProbe'], c.name, ownPorts, report);

    c.env.forEach((e, j) => {
      if (e.value !== undefined && e.valueFrom !== undefined)
        report([...at, 'env', j], 'has both value and valueFrom; give one');
    });
    checkResources(c.resources, [...at, 'resources'], report);
    checkSecurity(spec, c, at, report);

    const mountPaths = new Map<string, number>();
    c.volumeMounts.forEach((m, j) => {
      if (!spec.volumes.some((v) => v.name === m.name)) {
        const names = spec.volumes.map((v) => v.name);
        const list = names.length > 0 ? `its volumes: ${names.join(', ')}` : 'it has no volumes';
        report([...at, 'volumeMounts', j, 'name'], `the pod has no volume named "${m.name}" (${list})`);
      }
      const path = m.mountPath.replace(/\/+$/, '') || '/';
      if (path === '/' || path.split('/').includes('..'))
        report(
          [...at, 'volumeMounts', j, 'mountPath'],
          `must be an absolute path below /, without "..", got ${JSON.stringify(m.mountPath)}`,
        );
      const dup = mountPaths.get(path);
      if (dup !== undefined)
        report([...at, 'volumeMounts', j, 'mountPath'], `duplicate mountPath ${path} (also volumeMounts[${dup}])`);
      else mountPaths.set(path, j);
    });
  });
  const volumeNames = new Map<string, number>();
  spec.volumes.forEach((v, i) => {
    const dup = volumeNames.get(v.name);
    if (dup !== undefined)
      report([...base, 'volumes', i, 'name'], `duplicate volume name "${v.name}" (also volumes[${dup}])`);
    else volumeNames.set(v.name, i);
    const size = v.emptyDir.sizeLimit;
    if (size !== undefined) {
      const bytes = parseMemory(size);
      if (typeof bytes === 'string') report([...base, 'volumes', i, 'emptyDir', 'sizeLimit'], bytes);
    }
  });
}

type Resources = PodSpec['containers'][number]['resources'];

/** cpu and memory must parse, and a request must not exceed its limit (as the API server says). */
function checkResources(r: Resources, at: Path, report: Report): void {
  if (r === undefined) return;
  const parsed: Record<string, Record<string, number>> = { requests: {}, limits: {} };
  for (const kind of ['requests', 'limits'] as const) {
    for (const [name, v] of Object.entries(r[kind] ?? {})) {
      if (name !== 'cpu' && name !== 'memory') continue;
      const n = name === 'cpu' ? parseCpu(v) : parseMemory(v);
      if (typeof n === 'string') report([...at, kind, name], n);
      else (parsed[kind] as Record<string, number>)[name] = n;
    }
  }
  for (const name of ['cpu', 'memory']) {
    const req = parsed.requests?.[name];
    const lim = parsed.limits?.[name];
    if (req !== undefined && lim !== undefined && req > lim)
      report(
        [...at, 'requests', name],
        `must not exceed limits.${name} (${String(r.limits?.[name])}), got ${String(r.requests?.[name])}`,
      );
  }
}

/** Capability names must exist; runAsNonRoot needs a uid other than 0 (the local runtime runs a
 *  container as root unless told otherwise, as an image without USER does). */
function checkSecurity(spec: PodSpec, c: PodSpec['containers'][number], at: Path, report: Report): void {
  const sc = c.securityContext;
  for (const kind of ['add', 'drop'] as const) {
    sc?.capabilities?.[kind].forEach((cap, j) => {
      if (cap !== 'ALL' && !CAPABILITIES.includes(cap))
        report([...at, 'securityContext', 'capabilities', kind, j], `unknown capability ${JSON.stringify(cap)}`);
    });
  }
  if (sc?.allowPrivilegeEscalation === true)
    report(
      [...at, 'securityContext', 'allowPrivilegeEscalation'],
      'cannot be true in the local runtime: every container runs with no_new_privs',
    );
  const uid = sc?.runAsUser ?? spec.securityContext?.runAsUser ?? 0;
  const nonRoot = sc?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot ?? false;
  if (nonRoot && uid === 0) {
    const where =
      sc?.runAsNonRoot !== undefined
        ? [...at, 'securityContext', 'runAsNonRoot']
        : [...at.slice(0, -2), 'securityContext', 'runAsNonRoot'];
    report(where, 'is true but the container would run as root (uid 0): set runAsUser to another uid');
  }
}

function checkProbe(p: Probe, at: Path, container: string, ports: ReadonlySet<string>, report: Report): void {
  const handlers = (['httpGet', 'tcpSocket', 'exec'] as const).filter((h) => p[h] !== undefined);
  if (handlers.length !== 1) {
    report(
      at,
      `needs exactly one of httpGet, tcpSocket, exec, got ${handlers.length === 0 ? 'none' : handlers.join(' and ')}`,
    );
  }
  for (const h of ['httpGet', 'tcpSocket'] as const) {
    const port = p[h]?.port;
    if (typeof port === 'string' && !ports.has(port)) {
      const list = ports.size > 0 ? `its named ports: ${[...ports].join(', ')}` : 'it has no named ports';
      report([...at, h, 'port'], `container "${container}" has no port named "${port}" (${list})`);
    }
  }
  if (p.timeoutSeconds > p.periodSeconds) {
    report([...at, 'timeoutSeconds'], `must not exceed periodSeconds (${p.periodSeconds}), got ${p.timeoutSeconds}`);
  }
}

export function checkDeployment(d: DeploymentDoc, opts: CheckOptions, report: Report): MeshAnnotations {
  const tmpl = d.spec.template;
  const sel = d.spec.selector;
  if (Object.keys(sel.matchLabels).length === 0 && sel.matchExpressions.length === 0) {
    report(['spec', 'selector'], 'must not be empty: it says which pods belong to the Deployment');
  } else if (!matchesSelector(sel, tmpl.metadata.labels)) {
    const labels = Object.entries(tmpl.metadata.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    report(
      ['spec', 'selector'],
      `does not match the template's labels (spec.template.metadata.labels: ${labels === '' ? 'none' : labels})`,
    );
  }
  sel.matchExpressions.forEach((e, i) => {
    const needsValues = e.operator === 'In' || e.operator === 'NotIn';
    if (needsValues && e.values.length === 0)
      report(['spec', 'selector', 'matchExpressions', i, 'values'], `must not be empty for operator ${e.operator}`);
    if (!needsValues && e.values.length > 0)
      report(['spec', 'selector', 'matchExpressions', i, 'values'], `must be empty for operator ${e.operator}`);
  });
  if (tmpl.spec.restartPolicy !== 'Always') {
    report(
      ['spec', 'template', 'spec', 'restartPolicy'],
      `must be "Always" in a Deployment, got ${JSON.stringify(tmpl.spec.restartPolicy)}`,
    );
  }
  checkPodSpec(tmpl.spec, ['spec', 'template', 'spec'], opts, report);
  return checkMetadata(tmpl.metadata, ['spec', 'template', 'metadata'], 'pod', report);
}

export function checkService(s: ServiceDoc, report: Report): void {
  const ports = s.spec.ports;
  const names = new Map<string, number>();
  const numbers = new Map<string, number>();
  ports.forEach((p, i) => {
    const at = ['spec', 'ports', i];
    if (p.name === undefined) {
      if (ports.length > 1) report([...at, 'name'], 'is required when a Service has more than one port');
    } else {
      const dup = names.get(p.name);
      if (dup !== undefined) report([...at, 'name'], `duplicate port name "${p.name}" (also ports[${dup}])`);
      else names.set(p.name, i);
    }
    const key = `${p.port}/${p.protocol}`;
    const dup = numbers.get(key);
    if (dup !== undefined) report([...at, 'port'], `duplicate port ${key} (also ports[${dup}])`);
    else numbers.set(key, i);
  });
  if (s.spec.selector !== undefined) {
    for (const [k, v] of Object.entries(s.spec.selector)) {
      const problem = checkQualifiedName(k) ?? checkLabelValue(v);
      if (problem !== undefined) report(['spec', 'selector', k], problem);
    }
  }
  const ip = s.spec.clusterIP;
  if (ip !== undefined && ip !== 'None' && ip !== '' && !isIPv4(ip)) {
    report(['spec', 'clusterIP'], `must be an IPv4 address or "None", got ${JSON.stringify(ip)}`);
  }
}

function isIPv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}
