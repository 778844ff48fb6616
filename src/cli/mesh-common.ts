// What the local-mesh commands (up, down, get, logs, exec) share: the --state-dir option, failing
// with a message, reaching the running mesh, and finding a pod by name or `deploy/NAME`.
import { resolve } from 'node:path';
import { Option } from 'commander';
import { meshStatus, savedStatus } from '../daemon/client.js';
import type { MeshStatus, PodView } from '../runtime/mesh.js';
import { DEFAULT_STATE_DIR, runningControlPid } from '../runtime/state.js';

export function stateDirOption(): Option {
  return new Option('--state-dir <dir>', 'the mesh state directory').default(DEFAULT_STATE_DIR);
}

export function stateDir(opt: string | undefined): string {
  return resolve(opt ?? DEFAULT_STATE_DIR);
}

/** Prints `outrigger <cmd>: <message>` and exits. */
export function fail(cmd: string, message: string, code = 1): never {
  process.stderr.write(`outrigger ${cmd}: ${message}\n`);
  process.exit(code);
}

/** The running mesh's status; exits with a message if no mesh runs in the directory. */
export async function liveStatus(cmd: string, dir: string): Promise<MeshStatus> {
  if (runningControlPid(dir) === undefined)
    fail(cmd, `no mesh is running in ${dir} (start one with outrigger up -f FILE)`);
  try {
    return await meshStatus(dir);
  } catch (err) {
    return fail(cmd, `the mesh in ${dir} does not answer: ${(err as Error).message}`);
  }
}

/** The running mesh's status, or the last one saved (e.g. for logs after `down` or a crash). */
export async function anyStatus(dir: string): Promise<MeshStatus | undefined> {
  if (runningControlPid(dir) !== undefined) {
    try {
      return await meshStatus(dir);
    } catch {
      // fall back to the file
    }
  }
  return savedStatus(dir).catch(() => undefined);
}

/** A pod by name, or `deploy/NAME` (`deployment/NAME`): the first ready pod of the Deployment. */
export function findPod(status: MeshStatus, namespace: string, ref: string): PodView | string {
  const m = /^(?:deploy|deployment|deployments)\/(.+)$/.exec(ref);
  if (m !== null) {
    const mine = status.pods.filter((p) => p.namespace === namespace && p.deployment === m[1]);
    if (mine.length === 0) return `no deployment ${namespace}/${m[1]}`;
    return mine.find((p) => p.ready) ?? (mine[0] as PodView);
  }
  const pod = status.pods.find((p) => p.namespace === namespace && p.name === ref);
  return (
    pod ??
    `no pod ${namespace}/${ref}${status.pods.some((p) => p.name === ref) ? ' (it is in another namespace: use -n)' : ''}`
  );
}
