// The state directory of one local mesh (default /var/run/outrigger): where each file lives, atomic
// JSON writes (0600: state.json holds the manifests' env values), and whether its control process runs.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeCodes, RuntimeError } from './errors.js';

export const DEFAULT_STATE_DIR = '/var/run/outrigger';

/** The files of a mesh's state directory. Logs live under `pods/<ns>/<pod>/` (supervisor/record.ts). */
export interface StatePaths {
  readonly root: string;
  /** The network record (net/record.ts), written before each network change. */
  readonly net: string;
  /** The objects and pods as the control process last saw them (for `logs`, and `down` after a crash). */
  readonly state: string;
  /** The control process's pid. */
  readonly pid: string;
  /** The control process's API: JSON over HTTP on a unix socket. */
  readonly socket: string;
  /** The control process's own stdout and stderr. */
  readonly controlLog: string;
  readonly pods: string;
  /** What a new control process needs to take over a running mesh after the last one was killed:
   *  the applied files, the Services' addresses, each pod's uid and readiness (mesh.ts). */
  readonly resume: string;
  /** The arguments the control process was started with (less the files), to start it again. */
  readonly controlArgs: string;
  /** The mesh's tap token (0600, root): `outrigger tap` and the dashboard send it to the proxies. */
  readonly tapToken: string;
}

export function statePaths(root: string): StatePaths {
  return {
    root,
    net: join(root, 'net.json'),
    state: join(root, 'state.json'),
    pid: join(root, 'control.pid'),
    socket: join(root, 'control.sock'),
    controlLog: join(root, 'control.log'),
    pods: join(root, 'pods'),
    resume: join(root, 'resume.json'),
    controlArgs: join(root, 'control-args.json'),
    tapToken: join(root, 'tap-token'),
  };
}

/** 0755: the proxy's uid must be able to traverse it to a staged copy of the project (proxy-command.ts). */
export async function ensureStateDir(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o755 });
}

/** Writes JSON atomically with mode 0600 (a reader never sees half a file). */
let tmpCounter = 0;

export async function writeJsonAtomic(path: string, data: unknown): Promise<void> {
  // A name of its own per write: two writes of one file may overlap.
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`;
  await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

export async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RuntimeError(RuntimeCodes.STATE_RECORD, `${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The argument that marks a process as a mesh's control process (checked in /proc/<pid>/cmdline, so a
 *  stale pid file whose pid was reused by another program is not mistaken for a running mesh). */
export function controlMarker(root: string): string {
  return `--state-dir=${root}`;
}

/** The pid of the control process running for this state directory, if any. */
export function runningControlPid(root: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(statePaths(root).pid, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid < 2) return undefined;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('control') && argv.includes(controlMarker(root)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a control pid file exists (the process may be gone). */
export function recordedControlPid(root: string): number | undefined {
  try {
    const pid = Number(readFileSync(statePaths(root).pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the state directory's files except the logs (kept so that a failed or finished mesh can
 *  still be looked into; the next `up` removes them) and the mesh CA in identity/. `control: false` leaves the pid file and socket,
 *  which the control process removes itself as it exits. */
export async function removeStateFiles(root: string, o: { readonly control?: boolean } = {}): Promise<void> {
  const p = statePaths(root);
  // The pods' tokens go with the pods; the CA (identity/) stays, so the trust anchor outlives a restart.
  const files = [
    p.net,
    p.state,
    p.resume,
    p.controlArgs,
    join(root, 'proxy'),
    join(root, 'tokens'),
    p.tapToken,
    ...(o.control === false ? [] : [p.socket, p.pid]),
  ];
  for (const f of files) await rm(f, { recursive: true, force: true });
}
