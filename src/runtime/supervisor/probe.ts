// Readiness probes (httpGet, tcpSocket, exec) run from inside the pod's network namespace, on the
// schedule of probe-schedule.ts, reporting ready/unready changes.
//
// httpGet and tcpSocket run in this process on a socket made inside the pod's network namespace
// (probe-net.ts): `127.0.0.1` and the pod's own IP mean what they mean to the app, and the probe goes
// over `lo`, which the proxy-init rules leave alone: it never passes through the proxy, so policy
// cannot block it and a proxy problem shows up as the proxy's own unreadiness, not the app's.
// exec runs the command like the container: in the namespace, as its user, with its environment.
import type { ContainerPort, Probe } from '../manifests/index.js';
import { placedArgv, runBounded, type RunAs } from './launch.js';
import { containerInitPid, enterArgv, type Privileges } from './isolation.js';
import { runNetCheck } from './probe-net.js';
import {
  applyProbeResult,
  INITIAL_READINESS,
  nextProbeDelay,
  probeTiming,
  type ProbeTiming,
  type ReadinessState,
} from './probe-schedule.js';

export type ProbeAction =
  | {
      readonly kind: 'http';
      readonly host: string;
      readonly port: number;
      readonly path: string;
      readonly scheme: 'HTTP' | 'HTTPS';
      readonly headers: readonly { readonly name: string; readonly value: string }[];
    }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'exec'; readonly command: readonly string[] }
  /** A probe that cannot work (e.g. a port name the container does not have): every run fails with
   *  this message, as in Kubernetes, rather than the pod failing to start. */
  | { readonly kind: 'invalid'; readonly message: string };

export interface ResolvedProbe {
  readonly action: ProbeAction;
  readonly timing: ProbeTiming;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly message: string;
}

/** Where and how a probe runs. */
export interface ProbeContext {
  /** The pod's namespace; undefined runs in the host's (tests only). */
  readonly netns?: string;
  /** For exec probes: the container's user, environment and working directory. */
  readonly user?: RunAs;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** An isolated container: exec probes run inside it (its namespaces, through the pid the runtime
   *  recorded, and its privileges), as a kubelet's exec probe runs in the container. */
  readonly enter?: { readonly pid: () => number | undefined; readonly privileges: Privileges };
}

/** Turns a manifest probe into an action with a numeric port and a host (the pod's IP by default, as
 *  the kubelet does). */
export function resolveProbe(p: Probe, ports: readonly ContainerPort[], podIP: string): ResolvedProbe {
  const timing = probeTiming(p);
  const portOf = (port: number | string): number | string => {
    if (typeof port === 'number') return port;
    const found = ports.find((x) => x.name === port && x.protocol === 'TCP');
    return found === undefined ? `port name "${port}" is not one of the container's ports` : found.containerPort;
  };
  if (p.httpGet !== undefined) {
    const port = portOf(p.httpGet.port);
    if (typeof port === 'string') return { action: { kind: 'invalid', message: `httpGet: ${port}` }, timing };
    return {
      action: {
        kind: 'http',
        host: p.httpGet.host ?? podIP,
        port,
        path: p.httpGet.path,
        scheme: p.httpGet.scheme,
        headers: p.httpGet.httpHeaders,
      },
      timing,
    };
  }
  if (p.tcpSocket !== undefined) {
    const port = portOf(p.tcpSocket.port);
    if (typeof port === 'string') return { action: { kind: 'invalid', message: `tcpSocket: ${port}` }, timing };
    return { action: { kind: 'tcp', host: p.tcpSocket.host ?? podIP, port }, timing };
  }
  if (p.exec !== undefined) return { action: { kind: 'exec', command: p.exec.command }, timing };
  return { action: { kind: 'invalid', message: 'probe has no handler: set httpGet, tcpSocket or exec' }, timing };
}

export async function runProbe(action: ProbeAction, ctx: ProbeContext, timeoutMs: number): Promise<ProbeResult> {
  switch (action.kind) {
    case 'invalid':
      return { ok: false, message: action.message };
    case 'http':
    case 'tcp':
      return runNetCheck(action, ctx.netns, timeoutMs);
    case 'exec': {
      const recorded = ctx.enter?.pid();
      const nsPid = recorded !== undefined ? await containerInitPid(recorded) : undefined;
      if (ctx.enter !== undefined && nsPid === undefined)
        return { ok: false, message: `exec ${action.command.join(' ')}: the container is not running` };
      const argv =
        ctx.enter !== undefined && nsPid !== undefined
          ? enterArgv(nsPid, ctx.enter.privileges, action.command, ctx.cwd)
          : placedArgv(
              {
                ...(ctx.netns !== undefined ? { netns: ctx.netns } : {}),
                ...(ctx.user !== undefined ? { user: ctx.user } : {}),
              },
              action.command,
            );
      const r = await runBounded(argv, { env: ctx.env, cwd: ctx.cwd, timeoutMs });
      if (r.error !== undefined) return { ok: false, message: `exec ${action.command.join(' ')}: ${r.error.message}` };
      if (r.timedOut)
        return { ok: false, message: `exec ${action.command.join(' ')}: timed out after ${timeoutMs} ms` };
      const tail = r.output.trim().split('\n').slice(-1)[0] ?? '';
      return {
        ok: r.code === 0,
        message: `exec ${action.command.join(' ')}: ${r.code === null ? `killed by ${r.signal}` : `exit ${r.code}`}${tail !== '' ? `: ${tail}` : ''}`,
      };
    }
  }
}

export type ProbeRunner = (action: ProbeAction, ctx: ProbeContext, timeoutMs: number) => Promise<ProbeResult>;

/** Probes one container from its start until stopped: waits initialDelay, then probes every period,
 *  calling `onChange` when readiness flips. A loop per container start; a restart makes a new one. */
export class ProbeLoop {
  private state: ReadinessState = INITIAL_READINESS;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private last: ProbeResult | undefined;

  constructor(
    private readonly probe: ResolvedProbe,
    private readonly ctx: ProbeContext,
    private readonly onChange: (ready: boolean, result: ProbeResult) => void,
    private readonly run: ProbeRunner = runProbe,
  ) {}

  /** `ready`: the container was ready before this loop existed (a process adopted from an earlier
   *  runtime): it stays ready unless probes fail, and probing goes on at the usual period. */
  start(o: { readonly ready?: boolean } = {}): void {
    if (o.ready === true) {
      this.state = { ready: true, everReady: true, successes: 0, failures: 0 };
      this.schedule(this.probe.timing.periodMs);
      return;
    }
    this.schedule(this.probe.timing.initialDelayMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  get ready(): boolean {
    return this.state.ready;
  }

  get lastResult(): ProbeResult | undefined {
    return this.last;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    const began = Date.now();
    let result: ProbeResult;
    try {
      result = await this.run(this.probe.action, this.ctx, this.probe.timing.timeoutMs);
    } catch (err) {
      result = { ok: false, message: `probe failed to run: ${(err as Error).message}` };
    }
    if (this.stopped) return;
    this.last = result;
    const { state, change } = applyProbeResult(this.state, result.ok, this.probe.timing);
    this.state = state;
    if (change !== undefined) this.onChange(change === 'ready', result);
    this.schedule(nextProbeDelay(this.state, this.probe.timing, Date.now() - began));
  }
}
