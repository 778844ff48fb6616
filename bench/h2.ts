// HTTP/2 (h2c) load: runs h2load against a loopback port, takes RPS and errors from its summary, and
// p50/p99 from its --log-file (one line per request), since h2load itself prints no percentiles.
// With `h1`, the same over HTTP/1.1 keep-alive (h2load --h1, one request at a time per connection): the
// balance scenario's client, since its log times every request (see README, "Benchmark").
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { BenchError, runTool } from './tools.js';
import type { LoadResult } from './types.js';

/** Concurrent streams per connection (h2load -m). */
export const H2_STREAMS = 10;

export interface H2Load {
  h2load: string;
  port: number;
  durationS: number;
  connections: number;
  /** A scratch dir for the per-request log. */
  tmpDir: string;
  /** HTTP/1.1 instead of h2c, one request in flight per connection. */
  h1?: boolean;
  /** The request path (default /). */
  path?: string;
  /** POST this file as every request's body (h2load -d). */
  dataFile?: string;
  /** Request header lines, "name: value" (h2load -H). */
  headers?: readonly string[];
}

export async function runH2load(load: H2Load): Promise<LoadResult> {
  const logFile = path.join(load.tmpDir, `h2load-${load.port}-${Date.now()}.log`);
  const streams = load.h1 === true ? 1 : H2_STREAMS;
  const args = ['-t', '1', '-c', String(load.connections), '-m', String(streams), '-D', String(load.durationS)];
  if (load.h1 === true) args.push('--h1');
  if (load.dataFile !== undefined) args.push('-d', load.dataFile);
  for (const h of load.headers ?? []) args.push('-H', h);
  args.push('--log-file', logFile, `http://127.0.0.1:${load.port}${load.path ?? '/'}`);
  const out = await runTool(load.h2load, args, (load.durationS + 30) * 1000);
  if (out.code !== 0) throw new BenchError(`h2load exited with ${out.code}: ${out.stderr.trim() || out.stdout.trim()}`);
  const summary = parseH2loadSummary(out.stdout);
  const latency = latencyPercentiles(readFileSync(logFile, 'utf8'));
  rmSync(logFile, { force: true }); // ~30 bytes a request: don't let long runs fill the temp dir
  return { ...summary, ...latency };
}

export function parseH2loadSummary(stdout: string): Pick<LoadResult, 'rps' | 'requests' | 'errors'> {
  const rps = /^finished in [\d.]+\w+, ([\d.]+) req\/s/m.exec(stdout)?.[1];
  const req = /^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/m.exec(stdout);
  const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(stdout);
  if (rps === undefined || !req || !codes) throw new BenchError(`h2load: could not parse its report:\n${stdout}`);
  const done = Number(req[2]);
  if (done === 0) throw new BenchError(`h2load: no request completed (is the port speaking h2c?):\n${stdout}`);
  const errors = Number(req[4]) + Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  return { rps: Number(rps), requests: done, errors };
}

/** Nearest-rank p50/p99 over the log's third column (µs from request start to end of response). */
export function latencyPercentiles(log: string): Pick<LoadResult, 'p50Ms' | 'p99Ms'> {
  const lines = log.split('\n');
  const micros = new Float64Array(lines.length);
  let n = 0;
  for (const line of lines) {
    const fields = line.split('\t');
    if (fields.length < 3 || fields[1] === '-1') continue; // -1: failed stream, no latency
    micros[n++] = Number(fields[2]);
  }
  if (n === 0) throw new BenchError('h2load: its log file holds no completed request');
  const sorted = micros.subarray(0, n).sort();
  const at = (p: number): number => (sorted[Math.max(0, Math.ceil(p * n) - 1)] ?? NaN) / 1000;
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}
