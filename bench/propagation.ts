// The propagation measurement: how long an endpoint change in the store takes to reach proxies that
// watch the Service. N simulated proxies (the proxy's own Discovery class, each with its own gRPC
// client and TCP connection) watch one Service of the control-plane child; after all have their first
// answer, the store's endpoints are replaced `changes` times, and for every watcher and change we take
// the time from just before store.replace (in the child) to the moment its balancer was updated with
// the new endpoint set (a hook on the balancer's update(), the balancer factory being an option of
// Discovery). Both times are process.hrtime (CLOCK_MONOTONIC, machine-wide on Linux).
//
// The watchers share this one process (and its event loop), unlike 200 real proxies on 200 pods: the
// last of them to be served also waits for the others' message handling, so the tail is pessimistic.
import { readFileSync } from 'node:fs';
import { toPort, type SocketAddr } from '../src/core/addr.js';
import { createLogger } from '../src/core/log.js';
import type { EndpointInfo } from '../src/proxy/balance/balancer.js';
import { PeakEwmaBalancer } from '../src/proxy/balance/peak-ewma.js';
import { Discovery } from '../src/proxy/discover/discover.js';
import { serviceContent, startControlPlaneChild, VIP, VIP_PORT, type BenchEndpoint } from './control.js';
import { percentile } from './stats.js';
import { BenchError } from './tools.js';

export interface PropagationResult {
  watchers: number;
  changes: number;
  /** Watcher x change pairs that saw the change (the others timed out: `missed`). */
  samples: number;
  missed: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Per change: the slowest watcher (ms), in order. */
  max_per_change_ms: number[];
  /** TCP connections from the watchers to the control plane (should equal watchers). */
  grpc_connections: number;
  /** CPU time (user + system) per change, over the changes phase: the control-plane process, and the
   *  process holding all the watchers. */
  control_plane_cpu_ms_per_change: number;
  watchers_cpu_ms_per_change: number;
}

/** Each change waits at most this long for every watcher. */
const CHANGE_TIMEOUT_MS = 10_000;
/** Quiet time between changes, so that each is measured alone (the control plane coalesces bursts). */
const PAUSE_MS = 200;
/** Endpoints of the Service at any time; every change swaps the oldest for a new one (a rolling update). */
const SET_SIZE = 3;

/** The endpoint set of step k: pods k .. k+SET_SIZE-1 (addresses only; nothing listens there). */
export function endpointSet(k: number): BenchEndpoint[] {
  return Array.from({ length: SET_SIZE }, (_, i) => {
    const n = k + i;
    return { pod: `pod-${n}`, ip: `127.1.${(n >> 8) & 255}.${n & 255}`, port: 8080 };
  });
}

const keyOf = (set: readonly BenchEndpoint[]): string =>
  set
    .map((e) => `${e.ip}:${e.port}`)
    .sort()
    .join(',');

/** Established TCP connections (IPv4) whose remote end is 127.0.0.1:port, from /proc/net/tcp. */
export function countConnectionsTo(procNetTcp: string, port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const line of procNetTcp.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[2] === remote && cols[3] === '01') n++;
  }
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function measurePropagation(
  o: { watchers: number; changes: number },
  log: (line: string) => void,
): Promise<PropagationResult> {
  // Each Discovery made without a channel opens its own connection, as 200 proxies would (checked below).
  const cp = await startControlPlaneChild();
  const discoveries: Discovery[] = [];
  try {
    const addr: SocketAddr = { host: '127.0.0.1', port: toPort(cp.port) };
    const tls = { trustAnchors: cp.trustAnchorPem, serverIdentity: cp.identity };
    const dst: SocketAddr = { host: VIP, port: toPort(VIP_PORT) };
    const silent = createLogger('bench-propagation', 'silent');

    // What each watcher's balancer last received, and when (hrtime ns), set by the update hook.
    const seenKey: string[] = [];
    const seenAt: bigint[] = [];
    let expected = keyOf(endpointSet(0));
    // Watchers yet to see the change in progress; `allSeen` is called when that reaches 0.
    let remaining = 0;
    let allSeen: () => void = () => undefined;
    const hook = (i: number) => () => {
      const b = new PeakEwmaBalancer();
      const update = b.update.bind(b);
      b.update = (endpoints: readonly EndpointInfo[]): void => {
        update(endpoints);
        const key = endpoints
          .map((e) => e.key)
          .sort()
          .join(',');
        if (key === expected && seenKey[i] !== key) {
          seenAt[i] = process.hrtime.bigint();
          if (--remaining === 0) allSeen();
        }
        seenKey[i] = key;
      };
      return b;
    };

    await cp.replace(serviceContent(endpointSet(0)));
    for (let i = 0; i < o.watchers; i++) {
      seenKey.push('');
      seenAt.push(0n);
      discoveries.push(new Discovery({ addr, tls, log: silent, initialTimeoutMs: 30_000, balancer: hook(i) }));
    }
    const first = await Promise.all(discoveries.map((d) => d.resolve(dst)));
    const unknown = first.filter((d) => !d.known).length;
    if (unknown > 0)
      throw new BenchError(`propagation: ${unknown} of ${o.watchers} watchers got no answer for ${VIP}:${VIP_PORT}`);
    const connections = countConnectionsTo(readFileSync('/proc/net/tcp', 'utf8'), cp.port);
    const streams = (await cp.stats()).watchers;
    log(
      `[propagation] ${o.watchers} watchers answered; ${streams} destination streams, ${connections} TCP connections`,
    );
    if (connections !== o.watchers)
      log(`[propagation] WARNING: expected ${o.watchers} TCP connections to the control plane, saw ${connections}`);

    const latencies: number[] = [];
    const maxPerChange: number[] = [];
    let missed = 0;
    const cpBefore = await cp.stats();
    const oursBefore = process.cpuUsage();
    for (let k = 1; k <= o.changes; k++) {
      await sleep(PAUSE_MS);
      const set = endpointSet(k);
      expected = keyOf(set);
      remaining = o.watchers;
      let timer: NodeJS.Timeout | undefined;
      const seen = new Promise<void>((resolve) => {
        allSeen = resolve;
        timer = setTimeout(resolve, CHANGE_TIMEOUT_MS);
      });
      const reply = await cp.replace(serviceContent(set));
      await seen;
      clearTimeout(timer);
      const all = (): boolean => remaining <= 0;
      let worst = 0;
      for (let i = 0; i < o.watchers; i++) {
        if (seenKey[i] !== expected) {
          missed++;
          continue;
        }
        const ms = Number((seenAt[i] ?? 0n) - reply.tNs) / 1e6;
        latencies.push(ms);
        worst = Math.max(worst, ms);
      }
      maxPerChange.push(Number(worst.toFixed(2)));
      log(
        `[propagation change ${k}/${o.changes}] slowest watcher ${worst.toFixed(1)} ms` +
          (all() ? '' : `, MISSED by ${remaining} watcher(s)`),
      );
    }
    const oursCpu = process.cpuUsage(oursBefore);
    const cpAfter = await cp.stats();

    latencies.sort((a, b) => a - b);
    const r2 = (v: number): number => Number(v.toFixed(2));
    return {
      watchers: o.watchers,
      changes: o.changes,
      samples: latencies.length,
      missed,
      p50_ms: r2(percentile(latencies, 50)),
      p99_ms: r2(percentile(latencies, 99)),
      max_ms: r2(latencies[latencies.length - 1] ?? NaN),
      max_per_change_ms: maxPerChange,
      grpc_connections: connections,
      control_plane_cpu_ms_per_change: r2((cpAfter.cpuUs - cpBefore.cpuUs) / 1000 / o.changes),
      watchers_cpu_ms_per_change: r2((oursCpu.user + oursCpu.system) / 1000 / o.changes),
    };
  } finally {
    for (const d of discoveries) d.close();
    await cp.stop();
  }
}
