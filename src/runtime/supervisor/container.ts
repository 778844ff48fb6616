// One container of a pod: its process started in the pod's namespace as its user, its output appended
// to a log file, restarted per restartPolicy with backoff, its readiness probed, and stopped with
// SIGTERM then SIGKILL after the grace period, always as a whole process group.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { appendFile, access, constants, open, readFile, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import type { RestartPolicy } from '../manifests/index.js';
import { Backoff, shouldRestart, type BackoffOptions } from './backoff.js';
import { GATE_CLOSED_EXIT, killGroup, placedArgv, spawnGated, type RunAs } from './launch.js';
import type { Cgroup, CgroupLimits } from './cgroups.js';
import { isolatedArgv, type Isolation, type JoinPid, type Privileges } from './isolation.js';
import { ProbeLoop, type ProbeResult, type ProbeRunner, type ResolvedProbe } from './probe.js';
import { bootId, groupMembers, procStat } from './proc.js';
import {
  ensurePodStateDir,
  logPath,
  parseProcessRecord,
  recordedGroupAlive,
  recordPath,
  removeProcessRecord,
  RUN_MARKER_ENV,
  writeProcessRecord,
  type ProcessRecord,
} from './record.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';
import { internalError } from '../../core/errors.js';

/** What to run, fully resolved (env expanded, probe ports numeric): see pod.ts for the manifest side. */
export interface ContainerSpec {
  readonly name: string;
  /** command + args. */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Must exist; default `/`. */
  readonly workingDir?: string;
  readonly restartPolicy: RestartPolicy;
  readonly readinessProbe?: ResolvedProbe;
  /** Run as this user; default the runtime's own (root). */
  readonly user?: RunAs;
  /** Between SIGTERM and SIGKILL when stopping (ms). */
  readonly terminationGraceMs: number;
  /** Its own mount and PID namespaces, privileges and view of the machine (isolation.ts); applies
   *  when the pod has a network namespace. `user` is then ignored: `isolation.privileges` says it. */
  readonly isolation?: Isolation;
  /** Its cgroup's limits (applied when the pod has a cgroup). */
  readonly resources?: CgroupLimits;
}

export interface ContainerOptions {
  readonly pod: { readonly namespace: string; readonly name: string };
  /** The pod's network namespace; undefined runs in the host's (for tests without root). */
  readonly netns?: string;
  /** `<stateDir>/pods/<ns>/<pod>`: where the log and the process record live. */
  readonly podDir: string;
  readonly backoff?: BackoffOptions;
  readonly probeRunner?: ProbeRunner;
  /** The container's cgroup (below its pod's); made and limited at each start. */
  readonly cgroup?: Cgroup;
  /** For a container whose isolation joins the pod's shared PID namespace: the holder's pid 1 (waiting
   *  for it to run); rejects, with why, when there is none. Asked again at each start. */
  readonly pidHolder?: () => Promise<number>;
}

export interface Termination {
  /** The exit code, or 128 + the signal's number when a signal ended it (as a shell reports). */
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
  /** Completed (exit 0), Error, OOMKilled (the kernel killed a process of it over its memory limit),
   *  or StartError (the process could not be started). */
  readonly reason: 'Completed' | 'Error' | 'OOMKilled' | 'StartError';
  readonly message?: string;
  readonly startedAt?: Date;
  readonly finishedAt: Date;
}

export type ContainerState =
  | { readonly state: 'waiting'; readonly reason: 'ContainerCreating' | 'CrashLoopBackOff'; readonly restartAt?: Date }
  | { readonly state: 'running'; readonly pid: number; readonly startedAt: Date }
  | ({ readonly state: 'terminated' } & Termination);

export interface ContainerStatus {
  readonly name: string;
  readonly state: ContainerState;
  readonly ready: boolean;
  /** Times the container was started again after it ended. */
  readonly restarts: number;
  /** Whether it was ever started; false while its first start is pending. */
  readonly started: boolean;
  /** True when it has ended and will not be started again (restartPolicy, or stopped). */
  readonly finished: boolean;
  readonly lastTermination?: Termination;
  readonly lastProbe?: ProbeResult;
  readonly logFile: string;
  /** How `outrigger exec` enters it: its privileges and working directory (isolated containers). */
  readonly privileges?: Privileges;
  readonly workingDir?: string;
}

export interface ContainerEvents {
  start: [{ readonly pid: number; readonly restarts: number }];
  exit: [{ readonly termination: Termination; readonly restartInMs?: number }];
  ready: [ProbeResult | undefined];
  unready: [ProbeResult | undefined];
  /** Any change of status. */
  change: [];
}

/** Where `ip netns add` mounts named network namespaces. */
const NETNS_RUN_DIR = '/run/netns';

/** SIGKILL cannot be refused; this only guards against a process stuck in the kernel (state D). */
const KILL_WAIT_MS = 10_000;

/** How often an adopted process (not our child: no exit event) is checked for in /proc. */
const ADOPTED_POLL_MS = 250;

export class Container extends EventEmitter<ContainerEvents> {
  readonly spec: ContainerSpec;
  readonly logFile: string;
  private readonly recordFile: string;
  private readonly opts: ContainerOptions;
  private readonly backoff: Backoff;

  private current: ContainerState = { state: 'waiting', reason: 'ContainerCreating' };
  private pid: number | undefined;
  private startedAt: Date | undefined;
  private gateOpened = false;
  /** Why the current process is being killed before its gate opened, for onExit's message. */
  private releaseFailure: string | undefined;
  private exited: Promise<void> | undefined;
  private launching: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private probe: ProbeLoop | undefined;
  private isReady = false;
  private restartCount = 0;
  private everStarted = false;
  private startCalled = false;
  private stopping = false;
  private finished = false;
  private last: Termination | undefined;
  private logChain: Promise<void> = Promise.resolve();
  /** The cgroup's OOM kill count when the current process started. */
  private oomBefore = 0;

  constructor(spec: ContainerSpec, opts: ContainerOptions) {
    super();
    if (spec.argv.length === 0) throw new RuntimeError(RuntimeCodes.POD_SPEC, `container ${spec.name}: empty command`);
    this.spec = spec;
    this.opts = opts;
    this.backoff = new Backoff(opts.backoff);
    this.logFile = logPath(opts.podDir, spec.name);
    this.recordFile = recordPath(opts.podDir, spec.name);
  }

  private get label(): string {
    return `${this.opts.pod.namespace}/${this.opts.pod.name}/${this.spec.name}`;
  }

  get ready(): boolean {
    return this.isReady;
  }

  status(): ContainerStatus {
    return {
      name: this.spec.name,
      state: this.current,
      ready: this.isReady,
      restarts: this.restartCount,
      started: this.everStarted,
      finished: this.finished,
      ...(this.last !== undefined ? { lastTermination: this.last } : {}),
      ...(this.probe?.lastResult !== undefined ? { lastProbe: this.probe.lastResult } : {}),
      logFile: this.logFile,
      ...(this.isolation !== undefined
        ? { privileges: this.isolation.privileges, workingDir: this.spec.workingDir ?? '/' }
        : {}),
    };
  }

  /** The isolation in force: only inside a network namespace (a test without root runs on the host). */
  private get isolation(): Isolation | undefined {
    return this.opts.netns !== undefined ? this.spec.isolation : undefined;
  }

  /** Starts the container; resolves once its process runs (or its start failed and a restart is
   *  scheduled, or it ended for good: see status()). Rejects only if the state directory is unusable. */
  async start(): Promise<void> {
    if (this.startCalled || this.stopping) throw internalError(`container ${this.label}: already started`);
    this.startCalled = true;
    await ensurePodStateDir(this.opts.podDir);
    await this.launchOnce();
  }

  /**
   * Takes over the process an earlier runtime started for this container (its record in the pod's
   * directory), when the runtime was killed and started again: the process keeps running, untouched,
   * and is watched from here on. It is not our child, so its end is noticed by polling /proc and its
   * exit status is unknown. Returns false (adopting nothing) when the record is missing or damaged or
   * its process is gone; the caller then starts the container afresh. A group whose leader is gone but
   * whose members live on is killed first, so that a fresh start never runs beside leftovers.
   */
  async adopt(o: { readonly wasReady?: boolean } = {}): Promise<boolean> {
    if (this.startCalled || this.stopping) throw internalError(`container ${this.label}: already started`);
    let rec: ProcessRecord;
    try {
      rec = parseProcessRecord(JSON.parse(await readFile(this.recordFile, 'utf8')));
    } catch {
      return false;
    }
    const leader = await procStat(rec.pid);
    const alive =
      rec.bootId === (await bootId()) &&
      leader !== undefined &&
      leader.startTicks === rec.startTicks &&
      leader.pgrp === rec.pid &&
      leader.state !== 'Z';
    if (!alive) {
      if (await recordedGroupAlive(rec)) killGroup(rec.pid, 'SIGKILL');
      await removeProcessRecord(this.recordFile);
      return false;
    }
    this.startCalled = true;
    const pid = rec.pid;
    this.pid = pid;
    this.gateOpened = true;
    this.everStarted = true;
    this.startedAt = new Date();
    this.exited = (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, ADOPTED_POLL_MS));
        const now = await procStat(pid);
        if (now === undefined || now.startTicks !== rec.startTicks || now.state === 'Z' || now.state === 'X') break;
      }
      await this.onExit(pid, null, null, true);
    })();
    await this.logLine(`adopted container ${this.spec.name}: pid ${pid}, left running by an earlier control process`);
    this.setState({ state: 'running', pid, startedAt: this.startedAt });
    this.emit('start', { pid, restarts: this.restartCount });
    this.oomBefore = (await this.opts.cgroup?.oomKills()) ?? 0;
    this.startReadiness(o.wasReady === true);
    return true;
  }

  /** Kills what is left of the process an earlier runtime recorded for this container, if anything,
   *  and removes its record: for a pod whose shared PID namespace is new, where nothing may be adopted. */
  async dropLeftover(): Promise<void> {
    let rec: ProcessRecord;
    try {
      rec = parseProcessRecord(JSON.parse(await readFile(this.recordFile, 'utf8')));
    } catch {
      return;
    }
    if (await recordedGroupAlive(rec)) killGroup(rec.pid, 'SIGKILL');
    await removeProcessRecord(this.recordFile);
  }

  private launchOnce(): Promise<void> {
    const p = this.launch().finally(() => {
      if (this.launching === p) this.launching = undefined;
    });
    this.launching = p;
    return p;
  }

  private async launch(): Promise<void> {
    this.startedAt = undefined;
    this.setState({ state: 'waiting', reason: 'ContainerCreating' });
    const problem = await this.preflight();
    if (problem !== undefined) return this.startFailedNow(problem);

    const runId = randomUUID();
    const iso = this.isolation;
    let join: JoinPid | undefined;
    if (iso?.pidNamespace === 'join') {
      if (this.opts.pidHolder === undefined)
        return this.startFailedNow('it joins the pod PID namespace but the pod has no holder');
      try {
        join = { holderPid: await this.opts.pidHolder() };
      } catch (err) {
        return this.startFailedNow((err as Error).message);
      }
      if (this.stopping) return;
    }
    const argv =
      iso !== undefined && this.opts.netns !== undefined
        ? isolatedArgv(this.opts.netns, iso, this.spec.argv, join)
        : placedArgv(
            {
              ...(this.opts.netns !== undefined ? { netns: this.opts.netns } : {}),
              ...(this.spec.user !== undefined ? { user: this.spec.user } : {}),
            },
            this.spec.argv,
          );
    let log;
    try {
      log = await open(this.logFile, 'a', 0o600);
    } catch (err) {
      return this.startFailedNow(`cannot open log file ${this.logFile}: ${(err as Error).message}`);
    }
    let gated;
    try {
      gated = await spawnGated({
        argv,
        env: { ...this.spec.env, [RUN_MARKER_ENV]: runId },
        cwd: this.spec.workingDir ?? '/',
        logFd: log.fd,
      });
    } catch (err) {
      return this.startFailedNow(`cannot start: ${(err as Error).message}`);
    } finally {
      await log.close(); // the child has its own copy of the descriptor
    }
    const pid = gated.pid;
    this.pid = pid;
    this.gateOpened = false;
    this.releaseFailure = undefined;
    this.exited = new Promise((resolve) =>
      gated.child.once('exit', (code, signal) => {
        void this.onExit(pid, code, signal).then(resolve);
      }),
    );

    // The record first: from here on a crash of the runtime leaves a process `down` can find.
    try {
      const st = await procStat(pid);
      if (st === undefined) throw new RuntimeError(RuntimeCodes.POD_START, `process ${pid} vanished before it started`);
      await writeProcessRecord(this.recordFile, {
        version: 1,
        pod: `${this.opts.pod.namespace}/${this.opts.pod.name}`,
        container: this.spec.name,
        netns: this.opts.netns ?? null,
        pid,
        startTicks: st.startTicks,
        bootId: await bootId(),
        runId,
        ...(this.opts.cgroup !== undefined ? { cgroups: this.opts.cgroup.dirs() } : {}),
      });
      // Into its cgroup while held at the gate: everything the container starts is counted there.
      const cg = this.opts.cgroup;
      if (cg !== undefined) {
        await cg.create(this.spec.resources ?? {});
        await cg.add(pid);
        this.oomBefore = await cg.oomKills();
      }
      // The holder asked for above is still the same process: the namespace it names is the pod's.
      if (join !== undefined && (await this.opts.pidHolder?.().catch(() => undefined)) !== join.holderPid)
        throw new RuntimeError(RuntimeCodes.POD_START, "the holder of the pod's PID namespace changed meanwhile");
      await this.logLine(
        `start${this.restartCount > 0 ? ` (restart ${this.restartCount})` : ''} of container ${this.spec.name}: pid ${pid}: ${this.spec.argv.join(' ')}`,
      );
    } catch (err) {
      this.releaseFailure = `cannot record process ${pid}: ${(err as Error).message}`;
      killGroup(pid, 'SIGKILL');
      await this.exited; // onExit reports the failure and restarts or finishes
      return;
    }
    if (this.pid !== pid) return; // it died before the gate opened: onExit handled it
    if (this.stopping) {
      killGroup(pid, 'SIGKILL');
      return;
    }
    this.gateOpened = true;
    gated.open();
    this.everStarted = true;
    this.startedAt = new Date();
    this.setState({ state: 'running', pid, startedAt: this.startedAt });
    this.emit('start', { pid, restarts: this.restartCount });
    this.startReadiness();
  }

  /** Problems Kubernetes would report as CreateContainerError, found before spawning so that the
   *  message is clear rather than an exit code from `ip netns exec`. */
  private async preflight(): Promise<string | undefined> {
    if (this.opts.netns !== undefined) {
      try {
        await stat(join(NETNS_RUN_DIR, this.opts.netns));
      } catch {
        return `network namespace ${this.opts.netns} does not exist`;
      }
    }
    const wd = this.spec.workingDir;
    if (wd !== undefined) {
      try {
        if (!(await stat(wd)).isDirectory()) return `workingDir ${wd} is not a directory`;
      } catch {
        return `workingDir ${wd} does not exist`;
      }
    }
    const cmd = this.spec.argv[0] ?? '';
    if (cmd.includes('/')) {
      try {
        await access(wd !== undefined && !cmd.startsWith('/') ? join(wd, cmd) : cmd, constants.X_OK);
      } catch {
        return `command ${cmd} is not an executable file`;
      }
      return undefined;
    }
    for (const dir of (this.spec.env.PATH ?? '').split(delimiter)) {
      if (dir === '') continue;
      try {
        const p = join(dir, cmd);
        if ((await stat(p)).isFile()) {
          await access(p, constants.X_OK);
          return undefined;
        }
      } catch {
        // keep looking
      }
    }
    return `command "${cmd}" not found in PATH ${this.spec.env.PATH ?? '(unset)'}`;
  }

  /** `wasReady`: an adopted process that was ready keeps being ready until its probe says otherwise,
   *  so that taking it over never takes it out of its Services' endpoints. */
  private startReadiness(wasReady = false): void {
    const probe = this.spec.readinessProbe;
    if (probe === undefined) {
      this.setReady(true, undefined); // no probe: ready while running
      return;
    }
    this.probe = new ProbeLoop(
      probe,
      {
        ...(this.opts.netns !== undefined ? { netns: this.opts.netns } : {}),
        ...(this.spec.user !== undefined ? { user: this.spec.user } : {}),
        ...(this.isolation !== undefined
          ? { enter: { pid: () => this.pid, privileges: this.isolation.privileges } }
          : {}),
        env: this.spec.env,
        cwd: this.spec.workingDir ?? '/',
      },
      (ready, result) => this.setReady(ready, result),
      this.opts.probeRunner,
    );
    if (wasReady) this.setReady(true, undefined);
    this.probe.start({ ready: wasReady });
  }

  private stopReadiness(): void {
    this.probe?.stop();
    this.setReady(false, this.probe?.lastResult);
  }

  private setReady(ready: boolean, result: ProbeResult | undefined): void {
    if (this.isReady === ready) return;
    this.isReady = ready;
    this.emit(ready ? 'ready' : 'unready', result);
    this.emit('change');
  }

  private setState(s: ContainerState): void {
    this.current = s;
    this.emit('change');
  }

  /** `adopted`: the process was not our child, so its exit status is unknown (reported as an Error). */
  private async onExit(
    pid: number,
    code: number | null,
    signal: NodeJS.Signals | null,
    adopted = false,
  ): Promise<void> {
    if (this.pid !== pid) return;
    this.pid = undefined;
    // Children the process left behind in its group go with it, as with a container's PID namespace.
    // The group id cannot have been reused: the leader was only just reaped, and any member still
    // alive keeps the id in use.
    try {
      killGroup(pid, 'SIGKILL');
    } catch {
      // EPERM cannot happen as root; nothing else to do
    }
    this.stopReadiness();
    if (!this.gateOpened && !this.stopping) {
      void this.startFailedNow(
        this.releaseFailure ??
          (code === GATE_CLOSED_EXIT
            ? 'the gate closed before the process was released'
            : `process ${pid} died before it was released (${code ?? signal})`),
      );
      return;
    }
    const exitCode = code ?? 128 + (signal !== null ? (osConstants.signals[signal] ?? 0) : 0);
    // The kernel's OOM killer counts in the cgroup: a kill since the start means over the limit.
    const oomKilled = this.opts.cgroup !== undefined && (await this.opts.cgroup.oomKills()) > this.oomBefore;
    const limit = this.spec.resources?.memoryLimit;
    const termination: Termination = {
      exitCode,
      signal,
      reason: oomKilled ? 'OOMKilled' : exitCode === 0 && !adopted ? 'Completed' : 'Error',
      ...(oomKilled
        ? { message: `over its memory limit${limit !== undefined ? ` (${limit} bytes)` : ''}: killed by the kernel` }
        : adopted
          ? { message: 'an adopted process ended; its exit status is unknown' }
          : {}),
      ...(this.startedAt !== undefined ? { startedAt: this.startedAt } : {}),
      finishedAt: new Date(),
    };
    const ranMs = this.startedAt !== undefined ? termination.finishedAt.getTime() - this.startedAt.getTime() : 0;
    const how = oomKilled
      ? `was OOMKilled (exit code ${exitCode}, over its memory limit)`
      : adopted
        ? 'ended (exit status unknown: adopted)'
        : signal !== null
          ? `was killed by ${signal}`
          : `exited with code ${code}`;
    void this.afterEnd(
      termination,
      ranMs,
      `container ${this.spec.name} (pid ${pid}) ${how} after ${(ranMs / 1000).toFixed(1)} s`,
    );
  }

  /** Returns when its log line is written. */
  private startFailedNow(message: string): Promise<void> {
    this.pid = undefined;
    const termination: Termination = {
      exitCode: 128,
      signal: null,
      reason: 'StartError',
      message,
      finishedAt: new Date(),
    };
    return this.afterEnd(termination, 0, `container ${this.spec.name} cannot start: ${message}`);
  }

  /** After a process ended (or could not start): record it, and restart or finish. Returns when the
   *  log line saying so is written. */
  private afterEnd(t: Termination, ranMs: number, what: string): Promise<void> {
    this.last = t;
    void removeProcessRecord(this.recordFile).catch(() => undefined);
    if (this.stopping) {
      this.finished = true;
      this.setState({ state: 'terminated', ...t });
      this.emit('exit', { termination: t });
      return this.logLine(`${what}; stopped`);
    }
    if (
      shouldRestart(this.spec.restartPolicy, { code: t.reason === 'StartError' ? null : t.exitCode, signal: t.signal })
    ) {
      const delay = this.backoff.next(ranMs);
      const logged = this.logLine(
        `${what}; restarting in ${(delay / 1000).toFixed(1)} s (restartPolicy ${this.spec.restartPolicy})`,
      );
      this.setState({ state: 'waiting', reason: 'CrashLoopBackOff', restartAt: new Date(Date.now() + delay) });
      this.emit('exit', { termination: t, restartInMs: delay });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (this.stopping) return;
        this.restartCount++;
        void this.launchOnce();
      }, delay);
      return logged;
    }
    this.finished = true;
    this.setState({ state: 'terminated', ...t });
    this.emit('exit', { termination: t });
    return this.logLine(`${what}; not restarting (restartPolicy ${this.spec.restartPolicy})`);
  }

  /** Stops the container for good: SIGTERM to its process group, SIGKILL after the grace period.
   *  Resolves when every process of the group is gone. Safe to call more than once. */
  async stop(graceMs = this.spec.terminationGraceMs): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
    }
    if (this.launching !== undefined) await this.launching;
    this.probe?.stop();
    const pid = this.pid;
    const exited = this.exited;
    if (pid !== undefined && exited !== undefined) {
      await this.logLine(
        `stopping container ${this.spec.name}: SIGTERM to process group ${pid}, SIGKILL after ${(graceMs / 1000).toFixed(1)} s`,
      );
      killGroup(pid, 'SIGTERM');
      // The whole group must go, not only its leader: a child that ignores SIGTERM outlives a leader that
      // honours it, and even after SIGKILL the kernel tears members down one by one.
      const deadline = Date.now() + graceMs;
      const stopped = (await settlesWithin(exited, graceMs)) && (await groupGoneBy(pid, deadline));
      if (!stopped) {
        await this.logLine(`container ${this.spec.name} did not stop within ${(graceMs / 1000).toFixed(1)} s: SIGKILL`);
        killGroup(pid, 'SIGKILL');
        const killDeadline = Date.now() + KILL_WAIT_MS;
        if (!(await settlesWithin(exited, KILL_WAIT_MS)) || !(await groupGoneBy(pid, killDeadline))) {
          const why = `container ${this.label}: process group ${pid} survived SIGKILL for ${KILL_WAIT_MS} ms`;
          throw new RuntimeError(RuntimeCodes.STOP, why);
        }
      }
    } else if (!this.finished) {
      this.finished = true;
      if (this.current.state !== 'terminated')
        this.setState(
          this.last !== undefined
            ? { state: 'terminated', ...this.last }
            : { state: 'waiting', reason: 'ContainerCreating' },
        );
    }
    this.setReady(false, undefined);
    await removeProcessRecord(this.recordFile);
  }

  /** A line in the container's log, marked so that it cannot be mistaken for the app's output.
   *  Lines are written one after another, in the order asked. */
  private logLine(text: string): Promise<void> {
    const line = `[outrigger ${new Date().toISOString()}] ${text}\n`;
    this.logChain = this.logChain.then(
      () => appendFile(this.logFile, line, { mode: 0o600 }).catch(() => undefined), // best effort: the status holds the same facts
    );
    return this.logChain;
  }
}

/** Polls /proc until process group `pgid` has no live member, or `deadline` (epoch ms) passes. */
async function groupGoneBy(pgid: number, deadline: number): Promise<boolean> {
  for (;;) {
    if ((await groupMembers(pgid)).length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function settlesWithin(p: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
