// Every data-plane process of a running mesh, as `outrigger get dataplane` shows them and `outrigger lab`
// measures them: its mode, node, pid, the pods it serves, the identities whose private keys it holds
// (asked of the process itself: a node proxy's /dataplane, a sidecar's /identity) and its cgroup
// directories.
import http from 'node:http';
import { hostname } from 'node:os';
import { PROXY_CONTAINER } from '../manifests/contract.js';
import type { MeshStatus } from '../runtime/mesh.js';
import { adminGet, adminToken } from './admin-get.js';

export interface DataPlaneProcess {
  readonly name: string;
  readonly mode: 'sidecar' | 'per-host';
  readonly node: string;
  readonly pid?: number;
  /** `namespace/name` of the pods it serves. */
  readonly pods: readonly string[];
  /** The identities whose private keys it holds now (SPIFFE IDs). */
  readonly identities: readonly string[];
  readonly cgroups: readonly string[];
  /** Why what it holds could not be asked (it did not answer). */
  readonly error?: string;
}

/** The data-plane processes of `status`, each asked what it holds. */
export async function dataPlaneProcesses(status: MeshStatus, stateDir: string): Promise<DataPlaneProcess[]> {
  const dp = status.dataPlane;
  if (dp?.mode === 'per-host') {
    return Promise.all(
      dp.nodes.map(async (n): Promise<DataPlaneProcess> => {
        const base = {
          name: `proxy-node/${n.node}`,
          mode: 'per-host' as const,
          node: n.node,
          ...(n.pid !== undefined ? { pid: n.pid } : {}),
          cgroups: n.cgroups,
        };
        if (n.admin === undefined || n.pid === undefined) return { ...base, pods: [], identities: [] };
        try {
          const v = JSON.parse(await getText(`http://${n.admin}/dataplane`)) as {
            pods: { pod: string }[];
            identities: string[];
          };
          return { ...base, pods: v.pods.map((p) => p.pod).sort(), identities: v.identities };
        } catch (err) {
          return { ...base, pods: n.pods, identities: [], error: (err as Error).message };
        }
      }),
    );
  }
  const token = await adminToken(stateDir);
  const host = hostname();
  return Promise.all(
    status.pods
      .filter((p) => p.meshed)
      .map(async (p): Promise<DataPlaneProcess> => {
        const proxy = p.containers.find((c) => c.name === PROXY_CONTAINER);
        const pid = proxy?.state.state === 'running' ? proxy.state.pid : undefined;
        const base = {
          name: `${p.namespace}/${p.name}/${PROXY_CONTAINER}`,
          mode: 'sidecar' as const,
          node: p.node ?? host,
          ...(pid !== undefined ? { pid } : {}),
          pods: [`${p.namespace}/${p.name}`],
          cgroups: (p.cgroups ?? []).map((d) => `${d}/${PROXY_CONTAINER}`),
        };
        try {
          const r = await adminGet(p.ip, '/identity', token, 3000);
          if (r.status === 404) return { ...base, identities: [] }; // mTLS off
          if (r.status !== 200) return { ...base, identities: [], error: `/identity: ${r.status} ${r.body.trim()}` };
          const id = (JSON.parse(r.body) as { identity?: string }).identity;
          return { ...base, identities: id !== undefined && id !== '' ? [id] : [] };
        } catch (err) {
          return { ...base, identities: [], error: (err as Error).message };
        }
      }),
  );
}

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body.trim()}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 3 s`)));
    req.on('error', reject);
  });
}
