// How a container's process is started: the argv that enters the pod's network namespace and drops
// to the container's user, and a spawn that holds the process at a gate until the caller has recorded
// its pid (so a crash of the runtime can never leave a process nobody knows about).
//
// Namespace entry is `ip netns exec`, not `nsenter --net`: besides joining the namespace it mounts
// /etc/netns/<ns>/{hosts,resolv.conf} over /etc in a private mount namespace, which is how a pod
// resolves Services and its own hostname; and it execs, so the pid we spawn is the app's own pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { RuntimeCodes, RuntimeError } from '../errors.js';

/** A user to run as instead of the runtime's own (root). */
export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/** Where a pod's processes run: a named network namespace, or (tests only) the host's own. */
export interface Placement {
  readonly netns?: string;
  readonly user?: RunAs;
}

/** The argv that runs `argv` in the placement: `ip netns exec NS [setpriv ...] -- argv`. setpriv
 *  comes second because only root may enter a namespace; it clears supplementary groups so the
 *  process has exactly the uid and gid asked for, and (going from uid 0 to another uid) drops every
 *  capability. */
export function placedArgv(p: Placement, argv: readonly string[]): string[] {
  const out: string[] = [];
  if (p.netns !== undefined) out.push('ip', 'netns', 'exec', p.netns);
  if (p.user !== undefined && !(p.user.uid === 0 && p.user.gid === 0)) {
    out.push('setpriv', `--reuid=${p.user.uid}`, `--regid=${p.user.gid}`, '--clear-groups', '--');
  }
  out.push(...argv);
  return out;
}

/** The shell that waits at the gate: it reads one line from fd 3, and only then closes fd 3 and execs
 *  the container's argv (keeping its pid, which is also its process group id). If the runtime dies
 *  before opening the gate, the read sees end-of-file and the process exits without running anything. */
const GATE_SCRIPT = 'IFS= read -r _ <&3 || exit 125; exec 3<&-; exec "$@"';
export const GATE_CLOSED_EXIT = 125;

export interface GatedSpawnOptions {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** File descriptor for stdout and stderr (the container's log file). */
  readonly logFd: number;
}

/** A process held at its gate: `pid` is known and nothing of the container has run yet. */
export interface GatedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Lets the process exec the container's argv. */
  open(): void;
}

/** Spawns the gate in a new session (so it leads its own process group, and stopping the group stops
 *  the whole tree) with stdin from /dev/null. Rejects if the process cannot be started at all. */
export async function spawnGated(o: GatedSpawnOptions): Promise<GatedProcess> {
  const child = spawn('/bin/sh', ['-c', GATE_SCRIPT, 'outrigger-gate', ...o.argv], {
    cwd: o.cwd,
    env: { ...o.env },
    detached: true,
    stdio: ['ignore', o.logFd, o.logFd, 'pipe'],
  });
  if (child.pid === undefined) {
    const [err] = (await once(child, 'error')) as [Error];
    throw err;
  }
  const gate = child.stdio[3] as Writable;
  // An EPIPE here means the process died before we opened the gate; its exit event tells the story.
  gate.on('error', () => undefined);
  return {
    child,
    pid: child.pid,
    open: () => {
      gate.end('go\n');
    },
  };
}

export interface BoundedResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** stdout and stderr together, cut at `maxOutput` bytes. */
  readonly output: string;
  readonly timedOut: boolean;
  /** Set when the program could not be started (e.g. ENOENT). */
  readonly error?: Error;
}

/** Runs a short-lived command (a probe) in its own process group, killing the whole group with
 *  SIGKILL if it takes longer than `timeoutMs`. Never rejects. */
export function runBounded(
  argv: readonly string[],
  o: { env: Readonly<Record<string, string>>; cwd: string; timeoutMs: number; maxOutput?: number },
): Promise<BoundedResult> {
  const max = o.maxOutput ?? 10 * 1024;
  return new Promise((resolve) => {
    const [file, ...args] = argv;
    if (file === undefined) {
      const error = new RuntimeError(RuntimeCodes.POD_SPEC, 'empty command');
      resolve({ code: null, signal: null, output: '', timedOut: false, error });
      return;
    }
    const child = spawn(file, args, {
      cwd: o.cwd,
      env: { ...o.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let size = 0;
    const collect = (d: Buffer) => {
      if (size >= max) return;
      chunks.push(d.subarray(0, max - size));
      size += d.length;
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    let timedOut = false;
    let startError: Error | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    }, o.timeoutMs);
    child.on('error', (err) => {
      startError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Whatever the command left behind in its group goes with it.
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
      resolve({
        code,
        signal,
        output: Buffer.concat(chunks).toString('utf8'),
        timedOut,
        ...(startError !== undefined ? { error: startError } : {}),
      });
    });
  });
}

/** Signals a whole process group; false when it no longer exists. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) throw new RangeError(`refusing to signal process group ${pgid}`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
