// HTTP/1.1 load: runs wrk (keep-alive, --latency) against a loopback port and parses its report
// (Requests/sec, the 50% and 99% latency lines, errors).
import { BenchError, runTool } from './tools.js';
import type { LoadResult } from './types.js';

export interface WrkLoad {
  wrk: string;
  port: number;
  durationS: number;
  connections: number;
  /** Extra request headers (`Name: value`), e.g. `Connection: close` for a new connection per request. */
  headers?: readonly string[];
}

/**
 * One wrk run. One thread: the machine has 2 cores shared by client, proxy and upstream, and a single
 * wrk thread drives far more than one Node upstream can answer.
 */
export async function runWrk(load: WrkLoad): Promise<LoadResult> {
  const args = ['-t', '1', '-c', String(load.connections), '-d', `${load.durationS}s`, '--latency'];
  for (const h of load.headers ?? []) args.push('-H', h);
  args.push(`http://127.0.0.1:${load.port}/`);
  const out = await runTool(load.wrk, args, (load.durationS + 30) * 1000);
  if (out.code !== 0) throw new BenchError(`wrk exited with ${out.code}: ${out.stderr.trim() || out.stdout.trim()}`);
  return parseWrk(out.stdout);
}

const TIME_UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** wrk prints times like "167.00us", "4.26ms", "1.02s" (and m/h for absurd ones). */
export function parseWrkTime(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  const unit = match?.[2];
  if (match?.[1] === undefined || unit === undefined) throw new BenchError(`wrk: unknown time "${text}"`);
  return Number(match[1]) * (TIME_UNITS_MS[unit] ?? NaN);
}

export function parseWrk(stdout: string): LoadResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(stdout)?.[1];
  const p50 = /^\s+50%\s+(\S+)/m.exec(stdout)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(stdout)?.[1];
  const requests = /^\s+(\d+) requests in /m.exec(stdout)?.[1];
  if (rps === undefined || p50 === undefined || p99 === undefined || requests === undefined) {
    throw new BenchError(`wrk: could not parse its report:\n${stdout}`);
  }
  let errors = Number(/^\s+Non-2xx or 3xx responses:\s+(\d+)/m.exec(stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  if (socket) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return { rps: Number(rps), p50Ms: parseWrkTime(p50), p99Ms: parseWrkTime(p99), requests: Number(requests), errors };
}
