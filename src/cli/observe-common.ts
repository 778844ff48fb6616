// What stat, top, routes and the dashboard share on the CLI side: the `-t` window, resource
// references (`deploy/NAME`, `svc/NAME`, `pod/NAME`), and how figures are printed.
import type { Golden, Ref, ResourceKind } from '../observe/stats.js';
import { MAX_WINDOW_SEC } from '../daemon/client.js';

const KIND_ALIASES: Record<string, ResourceKind> = {
  deploy: 'deploy',
  deployment: 'deploy',
  deployments: 'deploy',
  deploys: 'deploy',
  pod: 'pod',
  pods: 'pod',
  po: 'pod',
  svc: 'svc',
  service: 'svc',
  services: 'svc',
};

export function parseKind(s: string): ResourceKind | undefined {
  return KIND_ALIASES[s.toLowerCase()];
}

/** `deploy/NAME` → a Ref in `namespace`; a string saying what is wrong otherwise. */
export function parseRef(s: string, namespace: string): Ref | string {
  const m = /^([a-z]+)\/(.+)$/i.exec(s);
  const kind = m !== null ? parseKind(m[1] as string) : undefined;
  if (m === null || kind === undefined)
    return `${JSON.stringify(s)} is not a resource: write deploy/NAME, pod/NAME or svc/NAME`;
  return { kind, namespace, name: m[2] as string };
}

/** `30s`, `1m`, `15m`, `90` (seconds) → seconds; a message when it is not a window we keep. */
export function parseWindow(s: string): number | string {
  const m = /^([0-9]+(?:\.[0-9]+)?)(s|m|h)?$/.exec(s.trim());
  if (m === null) return `-t ${JSON.stringify(s)}: write a duration such as 30s, 1m or 10m`;
  const sec = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  if (sec < 1 || sec > MAX_WINDOW_SEC)
    return `-t ${s}: the mesh keeps ${MAX_WINDOW_SEC / 60} minutes of metrics; use a window from 1s to ${MAX_WINDOW_SEC / 60}m`;
  return sec;
}

export const fmtRps = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) + 'rps';
export const fmtRate = (x: number | null) => (x === null ? '-' : `${(x * 100).toFixed(2)}%`);
export const fmtMs = (x: number | null) =>
  x === null ? '-' : x >= 100 ? `${x.toFixed(0)}ms` : x >= 10 ? `${x.toFixed(1)}ms` : `${x.toFixed(2)}ms`;
export const fmtCpu = (x: number | undefined) => (x === undefined ? '-' : `${Math.round(x * 1000)}m`);
export const fmtBytes = (x: number | undefined) =>
  x === undefined ? '-' : x >= 1 << 30 ? `${(x / (1 << 30)).toFixed(1)}Gi` : `${(x / (1 << 20)).toFixed(1)}Mi`;

/** SUCCESS RPS LATENCY_P50 LATENCY_P95 LATENCY_P99 TCP_CONN, as printed. */
export function goldenCells(g: Golden): string[] {
  return [fmtRate(g.successRate), fmtRps(g.rps), fmtMs(g.p50), fmtMs(g.p95), fmtMs(g.p99), String(g.tcpConnections)];
}
export const GOLDEN_HEAD = ['SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99', 'TCP_CONN'];

export const refText = (r: Ref) => `${r.kind}/${r.name}`;
export const sameRef = (a: Ref, b: Ref) => a.kind === b.kind && a.namespace === b.namespace && a.name === b.name;
