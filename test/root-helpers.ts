// Shared plumbing of the root tests: running the real CLI, and the loud "cannot run here"
// rule (skip when not root, but fail under CI=true, where these tests must always run).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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

/** Runs `outrigger ARGS` to completion (killed after `timeoutMs`). Meshes are brought up through the
 *  harness (mesh-harness.ts), which also takes them down when the file is stopped by a signal. */
export function cli(args: readonly string[], timeoutMs = 90_000): Promise<Run> {
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
