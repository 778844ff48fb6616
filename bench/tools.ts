// Process and host plumbing for the benchmark: finding the external tools (never installing them),
// spawning children that are always cleaned up (even on SIGINT), temp dirs, free ports, probes, CPU
// time (memory: bench/memory.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** External tools the bench drives, and the Debian package that provides each. */
export const TOOL_PACKAGES = { wrk: 'wrk', h2load: 'nghttp2-client', haproxy: 'haproxy' } as const;
export type Tool = keyof typeof TOOL_PACKAGES;

/** Thrown for problems the user can fix (missing tool, bad option); main prints the message only. */
export class BenchError extends Error {
  override name = 'BenchError';
}

// haproxy lives in /usr/sbin, which a non-root PATH often lacks.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable found on PATH (or an sbin dir), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Resolves every needed tool or throws one error naming all the Debian packages to install. */
export function requireTools(tools: readonly Tool[]): Record<Tool, string> {
  const found: Partial<Record<Tool, string>> = {};
  const missing: Tool[] = [];
  for (const tool of tools) {
    const file = findExecutable(tool);
    if (file === undefined) missing.push(tool);
    else found[tool] = file;
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t]))].join(' ');
    throw new BenchError(
      `missing tool(s): ${missing.join(', ')}; the bench installs nothing itself.\n` +
        `install the Debian package(s) with: sudo apt-get install ${pkgs}`,
    );
  }
  return found as Record<Tool, string>;
}

// ---- children and temp dirs that must not outlive the bench ----

const liveChildren = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `outrigger-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** A long-running child (upstream, proxy) whose output is kept as a short tail for error messages. */
export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the process exits. */
  readonly exited: Promise<string>;
  hasExited(): boolean;
  /** Last few kB of stdout+stderr. */
  tail(): string;
}

const TAIL_BYTES = 4096;

export function spawnManaged(name: string, command: string, args: readonly string[], opts: SpawnOptions = {}): Managed {
  const child = spawn(command, args, { ...opts, stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new BenchError(`${name}: could not start ${command}`);
  liveChildren.add(child);
  let tail = '';
  // Always drain the pipes so a chatty child never blocks on a full pipe.
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let done = false;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      liveChildren.delete(child);
      resolve(code !== null ? `code ${code}` : `signal ${signal ?? '?'}`);
    });
    child.once('error', (err) => {
      done = true;
      liveChildren.delete(child);
      resolve(`error ${err.message}`);
    });
  });
  return { name, child, pid: child.pid, exited, hasExited: () => done, tail: () => tail };
}

/** SIGTERM by pid, wait up to timeoutMs for exit, then SIGKILL. */
export async function stopManaged(m: Managed, timeoutMs = 5000): Promise<void> {
  if (m.hasExited()) return;
  killPid(m.pid, 'SIGTERM');
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  if ((await Promise.race([m.exited, timer])) === 'timeout') {
    killPid(m.pid, 'SIGKILL');
    await m.exited;
  }
}

export function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export interface RunResult {
  /** Exit code, or the signal name if it was killed. */
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived tool (wrk, h2load) to completion, killing it if it overruns timeoutMs. */
export function runTool(command: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) killPid(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      reject(new BenchError(`${path.basename(command)}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve({ code: code ?? signal ?? 'unknown', stdout, stderr });
    });
  });
}

const cleanups = new Set<() => void>();

/** Registers a synchronous clean-up (e.g. removing a network namespace) that cleanupSync runs after
 *  killing the children; returns the function that unregisters it (call it once done by hand). */
export function addCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => void cleanups.delete(fn);
}

/** Kills every child still alive (by pid), runs the registered clean-ups and removes temp dirs;
 *  synchronous so it works in 'exit'. */
export function cleanupSync(): void {
  for (const child of liveChildren) {
    if (child.pid !== undefined) killPid(child.pid, 'SIGKILL');
  }
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort: the next clean-up still runs
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** cleanupSync, then wait (briefly) until the children have exited, so we reap them, not init. */
async function cleanupAndReap(timeoutMs: number): Promise<void> {
  cleanupSync();
  const deadline = Date.now() + timeoutMs;
  while (liveChildren.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

let interrupted = false;
/** True once a signal started the shutdown; failures after that are its echo, not news. */
export function isInterrupted(): boolean {
  return interrupted;
}

export function installCleanupHandlers(): void {
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true;
      process.stderr.write(`\nbench: ${signal}, stopping children and removing temp dirs\n`);
      void cleanupAndReap(2000).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

// ---- ports, probes, readiness ----

/** n distinct free loopback ports: all are bound at once (so they differ), then released. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Status of one HTTP/1.1 GET to 127.0.0.1:port (fresh connection), or an error. */
export function probeHttp1(port: number, urlPath = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
  });
}

/** The body of one HTTP/1.1 GET to 127.0.0.1:port (fresh connection); rejects on a non-200. */
export function fetchText(port: number, urlPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${urlPath}: status ${res.statusCode ?? 0}`)),
      );
    });
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', reject);
  });
}

/** The JSON body of one HTTP/1.1 GET to 127.0.0.1:port (fresh connection); rejects on a non-200. */
export async function fetchJson(port: number, urlPath: string): Promise<unknown> {
  return JSON.parse(await fetchText(port, urlPath));
}

/** What a line-oriented unix socket (haproxy's stats socket) answers to `command`, read until it closes. */
export function unixCommand(socketPath: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let out = '';
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () =>
      s.destroy(new Error(`${socketPath}: no answer to "${command}" within ${timeoutMs} ms`)),
    );
    s.on('data', (c: string) => (out += c));
    s.once('error', reject);
    s.once('close', () => resolve(out));
    s.write(`${command}\n`); // non-interactive: haproxy answers one command, then closes
  });
}

/** Status of one h2c (prior knowledge) GET to 127.0.0.1:port, or an error. */
export function probeH2(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const fail = (err: Error): void => {
      session.destroy();
      reject(err);
    };
    session.once('error', fail);
    session.setTimeout(2000, () => fail(new Error('timed out')));
    const req = session.request({ ':path': '/' });
    let status = 0;
    req.once('response', (headers) => (status = Number(headers[':status'] ?? 0)));
    req.once('error', fail);
    req.resume();
    req.once('end', () => {
      session.close();
      resolve(status);
    });
  });
}

/**
 * Polls check() every 100 ms until it resolves true; fails after timeoutMs, or at once if the watched
 * child exits (its output tail goes into the error so a broken proxy explains itself).
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  watched?: Managed,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (watched?.hasExited()) {
      throw new BenchError(
        `${what}: ${watched.name} exited (${await watched.exited}) before ready:\n${watched.tail()}`,
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      const output = watched ? `\n${watched.name} output:\n${watched.tail()}` : '';
      throw new BenchError(`${what}: not ready after ${timeoutMs} ms${last ? ` (last error: ${last})` : ''}${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

/** CPU time (user + system) a process has used so far, in seconds (/proc/PID/stat, clock ticks of
 *  1/100 s on Linux), or null if unreadable. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / CLOCK_TICKS : null;
  } catch {
    return null;
  }
}
