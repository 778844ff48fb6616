// Shared plumbing of the root end-to-end tests: running the real CLI, and the loud "cannot run here"
// rule (skip when not root, but fail under CI=true, where these tests must always run).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { origDstAddonPath } from '../src/proxy/transport/origdst.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/test/ → the project
export const BIN = `${ROOT}bin/outrigger.js`;
/** The addon the proxies load: native/build/Release/origdst.node, or another build $OUTRIGGER_ORIGDST_ADDON names. */
export const ADDON = origDstAddonPath();

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The state directories of meshes this test process brought up and has not taken down yet. */
const meshesUp = new Set<string>();
let signalHandlers = false;

/**
 * Takes the mesh in `stateDir` down if this test file is stopped by a signal: the test runner sends
 * SIGTERM to a file that ran past --test-timeout, and Ctrl-C sends SIGINT. t.after never runs then,
 * and a mesh's control process (a daemon, not our child) would keep its pods, namespaces and rules,
 * and the load it makes would slow every test after it. `cli(['up', ...])` calls this itself.
 */
export function downOnSignal(stateDir: string): void {
  meshesUp.add(stateDir);
  if (signalHandlers) return;
  signalHandlers = true;
  const onSignal = (signal: NodeJS.Signals) => {
    for (const dir of meshesUp) {
      console.error(`\n*** ${signal}: taking down the mesh in ${dir} ***`);
      spawnSync(process.execPath, [BIN, 'down', '--state-dir', dir], { stdio: 'inherit', timeout: 60_000 });
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/** The --state-dir of a CLI command line, if it has one. */
function stateDirOf(args: readonly string[]): string | undefined {
  const i = args.indexOf('--state-dir');
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith('--state-dir='))?.slice('--state-dir='.length);
}

/** Runs `outrigger ARGS` to completion (killed after `timeoutMs`). An `up` is remembered for
 *  downOnSignal; a `down` that succeeded forgets its mesh. */
export function cli(args: readonly string[], timeoutMs = 90_000): Promise<Run> {
  const dir = stateDirOf(args);
  if (dir !== undefined && args[0] === 'up') downOnSignal(dir);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (dir !== undefined && args[0] === 'down' && code === 0) meshesUp.delete(dir);
      resolve({ code, stdout, stderr });
    });
  });
}

export const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** The commands a local-mesh test needs, with a flag that makes each print its version. */
export const MESH_TOOLS: readonly (readonly [string, string])[] = [
  ['ip', '-V'],
  ['iptables', '--version'],
  ['setpriv', '--version'],
  ['curl', '--version'],
  ['python3', '--version'],
];

/** Why this machine cannot run a root mesh test (root, the commands, the built addon), or undefined. */
export function meshPreconditions(commands: readonly (readonly [string, string])[]): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  const gone = commands.filter(([cmd, flag]) => spawnSync(cmd, [flag], { stdio: 'ignore' }).error !== undefined);
  if (gone.length) return `missing ${gone.map(([cmd]) => cmd).join(', ')}`;
  if (!existsSync(ADDON)) return `the addon is not built (${ADDON}); run npm ci`;
  return undefined;
}

/** Says loudly that `what` cannot run; fails under CI=true, skips otherwise. */
export function unavailable(t: TestContext, file: string, what: string, why: string, needs: string): void {
  const ci = process.env.CI === 'true';
  const msg = `${file}: ${why}: ${what} ${ci ? 'FAILS (CI=true)' : 'is SKIPPED'}; run it as root with ${needs}`;
  console.error(`\n*** ${msg} ***\n`);
  if (ci) assert.fail(msg);
  t.skip(msg);
}

/** A temporary directory for a mesh's state and files: searchable by others (0711), since the
 *  proxies run as their own uid and read their token files below it. */
export async function meshWorkDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o711);
  return dir;
}
