// The driver's side of the fixed-rate load generator (bench/loadgen.ts, its own process so that its CPU
// is its own and it never shares an event loop with the driver's samplers): what it is told, what it
// answers, and running it with hooks at the start and the end of its measured window (when the driver
// reads the proxies' CPU time). Also the schedule check: did the generator keep its rate and its times?
import { fileURLToPath } from 'node:url';
import { Histogram, type HistogramJson } from './histogram.js';
import { BenchError, spawnManaged, stopManaged } from './tools.js';

const SCRIPT = fileURLToPath(new URL('./loadgen.js', import.meta.url));

export interface LoadgenConfig {
  /** Connection c goes to targets[c mod targets.length]. */
  targets: { host: string; port: number }[];
  /** Requests per second, all connections together. */
  rate: number;
  connections: number;
  /** The measured window; the schedule holds rate x duration requests. */
  durationS: number;
  /** How long to wait for the last answers after the window (default 10 s); those still missing are
   *  reported as unfinished. */
  drainS?: number;
  path?: string;
}

/** The generator's last line. Histograms are in ns. */
export interface LoadgenResult {
  event: 'result';
  target_rps: number;
  connections: number;
  duration_s: number;
  scheduled: number;
  sent: number;
  completed: number;
  status_errors: number;
  connection_errors: number;
  /** Requests neither answered nor lost when the drain time ran out. */
  unfinished: number;
  sent_in_window: number;
  completed_in_window: number;
  /** Sends that waited for the previous answer on their connection (the system was behind). */
  queued_sends: number;
  max_backlog: number;
  /** The generator's CPU time (user + system, every thread) over the window, µs. */
  cpu_us_in_window: number;
  /** From the intended send time (coordinated omission corrected). */
  latency: HistogramJson;
  /** From the actual send (what a closed-loop client would have measured). */
  service_time: HistogramJson;
  /** Actual - intended send time of the sends that were not queued: the generator's own lateness. */
  lag: HistogramJson;
}

export interface GeneratorRun {
  result: LoadgenResult;
  latency: Histogram;
  serviceTime: Histogram;
  lag: Histogram;
}

/** Parses and checks the result line (histograms included). */
export function parseLoadgenResult(line: string): GeneratorRun {
  const r = JSON.parse(line) as LoadgenResult;
  if (r.event !== 'result' || typeof r.scheduled !== 'number' || typeof r.completed !== 'number') {
    throw new BenchError(`loadgen: unexpected result ${line.slice(0, 200)}`);
  }
  return {
    result: r,
    latency: Histogram.fromJSON(r.latency),
    serviceTime: Histogram.fromJSON(r.service_time),
    lag: Histogram.fromJSON(r.lag),
  };
}

export interface GeneratorHooks {
  /** The schedule started. */
  onStart?: () => void;
  /** The measured window ended (answers may still be coming). */
  onEnd?: () => void;
}

/** Runs the generator to completion. */
export function runGenerator(cfg: LoadgenConfig, hooks: GeneratorHooks = {}): Promise<GeneratorRun> {
  const proc = spawnManaged('loadgen', process.execPath, [SCRIPT, JSON.stringify(cfg)]);
  return new Promise<GeneratorRun>((resolve, reject) => {
    let buffered = '';
    let run: GeneratorRun | undefined;
    const timer = setTimeout(() => void stopManaged(proc, 100), (cfg.durationS + (cfg.drainS ?? 10) + 30) * 1000);
    proc.child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          if (line.startsWith('{"event":"start"')) hooks.onStart?.();
          else if (line.startsWith('{"event":"end"')) hooks.onEnd?.();
          else if (line.startsWith('{"event":"result"')) run = parseLoadgenResult(line);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    void proc.exited.then((how) => {
      clearTimeout(timer);
      if (run !== undefined && how === 'code 0') resolve(run);
      else reject(new BenchError(`loadgen exited (${how}) without a result:\n${proc.tail()}`));
    });
  });
}

/** Whether the generator kept its schedule: the rates it achieved and how late its own sends were. */
export interface ScheduleCheck {
  target_rps: number;
  /** Requests sent inside the window per second of it. */
  achieved_send_rps: number;
  /** Answers received inside the window per second of it. */
  achieved_rps: number;
  /** The generator's own lateness (sends not queued behind an answer), µs. */
  send_lag_p50_us: number;
  send_lag_p99_us: number;
  send_lag_max_us: number;
  /** Share of the sends that waited for the previous answer on their connection. */
  queued_share: number;
  max_backlog: number;
  /** The generator's CPU per 1,000 requests per second (vCPU): its own overhead. */
  generator_vcpu_per_krps: number;
  /** Empty when the schedule was kept; else what went wrong, in words. */
  problems: string[];
}

/** Sends must reach 99% of the target rate and the generator's p99 lateness stay under 1 ms. */
export const SCHEDULE_LIMITS = { minRateShare: 0.99, maxLagP99Us: 1000 } as const;

const r2 = (v: number): number => Number(v.toFixed(2));

export function checkSchedule(runs: readonly GeneratorRun[]): ScheduleCheck {
  const lag = new Histogram();
  for (const r of runs) lag.merge(r.lag);
  const sum = (f: (r: LoadgenResult) => number): number => runs.reduce((a, r) => a + f(r.result), 0);
  const seconds = sum((r) => r.duration_s);
  const target = runs[0]?.result.target_rps ?? 0;
  const sent = sum((r) => r.sent);
  const check: ScheduleCheck = {
    target_rps: target,
    achieved_send_rps: r2(sum((r) => r.sent_in_window) / seconds),
    achieved_rps: r2(sum((r) => r.completed_in_window) / seconds),
    send_lag_p50_us: r2(lag.percentile(50) / 1e3),
    send_lag_p99_us: r2(lag.percentile(99) / 1e3),
    send_lag_max_us: r2(lag.max / 1e3),
    queued_share: sent > 0 ? Number((sum((r) => r.queued_sends) / sent).toFixed(4)) : 0,
    max_backlog: Math.max(0, ...runs.map((r) => r.result.max_backlog)),
    generator_vcpu_per_krps: r2(sum((r) => r.cpu_us_in_window) / 1e6 / seconds / (target / 1000)),
    problems: [],
  };
  if (check.achieved_send_rps < target * SCHEDULE_LIMITS.minRateShare) {
    check.problems.push(
      `sent ${check.achieved_send_rps} req/s of the ${target} asked (the system under test was behind: ${(check.queued_share * 100).toFixed(1)}% of sends queued)`,
    );
  }
  if (check.send_lag_p99_us > SCHEDULE_LIMITS.maxLagP99Us) {
    check.problems.push(`the generator's own sends were late: p99 ${check.send_lag_p99_us} us (is the machine busy?)`);
  }
  const lost = sum((r) => r.connection_errors + r.unfinished);
  if (lost > 0) check.problems.push(`${lost} requests lost or unanswered`);
  return check;
}
