// The fixed-rate load generator, run as its own process (bench/generator.ts spawns it and reads it):
// keep-alive HTTP/1.1 GETs on raw `net` sockets at a constant rate, timed from their intended send
// times (bench/openloop.ts has the method). A worker thread (bench/metronome.ts) wakes it at each
// intended time. Connections are opened before the schedule starts; connection c goes to target
// c mod targets (the mesh-size scenario spreads connections over many Service addresses).
//
// argv[2]: the JSON of a LoadgenConfig. stdout, one JSON line each: {"event":"start"} when the schedule
// starts (t0), {"event":"end"} when its window ends, then {"event":"result",...} (a LoadgenResult)
// once every request was answered or lost, or the drain time ran out. Failures: a message on stderr
// and exit code 1.
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { OpenLoop, ResponseReader, scheduledCount } from './openloop.js';
import type { LoadgenConfig, LoadgenResult } from './generator.js';

const CONNECT_TIMEOUT_MS = 5000;
const RECONNECT_DELAY_MS = 50;

function fail(message: string): never {
  process.stderr.write(`loadgen: ${message}\n`);
  process.exit(1);
}

function emit(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function requestFor(t: { host: string; port: number }, path: string): Buffer {
  const host = t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: outrigger-bench-loadgen\r\n\r\n`, 'latin1');
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? 'null') as LoadgenConfig | null;
  if (cfg === null || !(cfg.rate > 0) || !(cfg.durationS > 0) || cfg.connections < 1 || cfg.targets.length === 0)
    fail('bad config');
  const C = cfg.connections;
  const requests = Array.from({ length: C }, (_, c) =>
    requestFor(cfg.targets[c % cfg.targets.length]!, cfg.path ?? '/'),
  );
  const sockets: (net.Socket | undefined)[] = new Array<net.Socket | undefined>(C);
  let t0 = 0n;
  const now = (): number => Number(process.hrtime.bigint() - t0);
  let stopping = false;

  const count = scheduledCount(cfg.rate, cfg.durationS);
  const loop = new OpenLoop({
    rate: cfg.rate,
    connections: C,
    count,
    windowNs: cfg.durationS * 1e9,
    send: (c) => void sockets[c]?.write(requests[c]!),
  });

  let connectFailures = 0;
  /** Opens connection c; resolves once it is connected (the first time) or failed. */
  const open = (c: number): Promise<void> =>
    new Promise((resolve) => {
      const target = cfg.targets[c % cfg.targets.length]!;
      const s = net.connect({ host: target.host, port: target.port, noDelay: true });
      const reader = new ResponseReader();
      let connected = false;
      s.setTimeout(CONNECT_TIMEOUT_MS, () => s.destroy(new Error('connect timed out')));
      s.once('connect', () => {
        connected = true;
        s.setTimeout(0);
        sockets[c] = s;
        if (t0 !== 0n) loop.connected(c, now());
        resolve();
      });
      s.on('data', (chunk: Buffer) => {
        const t = now();
        try {
          reader.feed(chunk, (status) => loop.answered(c, t, status));
        } catch (err) {
          s.destroy(err as Error);
        }
      });
      s.on('error', () => {}); // 'close' follows
      s.once('close', () => {
        if (sockets[c] === s) sockets[c] = undefined;
        if (!connected) connectFailures++;
        if (t0 !== 0n) loop.failed(c);
        resolve();
        if (!stopping && t0 !== 0n && !loop.finished()) setTimeout(() => void open(c), RECONNECT_DELAY_MS).unref();
      });
    });

  await Promise.all(Array.from({ length: C }, (_, c) => open(c)));
  if (connectFailures > 0)
    fail(`${connectFailures} of ${C} connections to ${cfg.targets.map((t) => `${t.host}:${t.port}`).join(',')} failed`);

  // The metronome starts first and waits for t0, so that a thread's start-up is not in the schedule.
  const stop = new SharedArrayBuffer(4);
  const metronome = new Worker(new URL('./metronome.js', import.meta.url), {
    workerData: { rate: cfg.rate, count, stop },
  });
  metronome.on('error', (err) => fail(`metronome: ${err.message}`));
  await new Promise<void>((resolve) => metronome.once('message', () => resolve()));
  metronome.on('message', () => loop.tick(now()));
  t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  metronome.postMessage(t0.toString());
  for (let c = 0; c < C; c++) if (sockets[c] !== undefined) loop.connected(c, 0);
  loop.tick(now());
  emit({ event: 'start' });

  let cpuWindow: NodeJS.CpuUsage | undefined;
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      cpuWindow = process.cpuUsage(cpu0);
      emit({ event: 'end' });
      resolve();
    }, cfg.durationS * 1000),
  );
  const drainDeadline = Date.now() + (cfg.drainS ?? 10) * 1000;
  while (!loop.finished() && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 10));
  stopping = true;
  Atomics.store(new Int32Array(stop), 0, 1);
  Atomics.notify(new Int32Array(stop), 0);
  await metronome.terminate();
  for (const s of sockets) s?.destroy();

  const st = loop.stats;
  const window = cpuWindow ?? process.cpuUsage(cpu0);
  const result: LoadgenResult = {
    event: 'result',
    target_rps: cfg.rate,
    connections: C,
    duration_s: cfg.durationS,
    scheduled: st.scheduled,
    sent: st.sent,
    completed: st.completed,
    status_errors: st.statusErrors,
    connection_errors: st.connectionErrors,
    unfinished: loop.outstanding(),
    sent_in_window: st.sentInWindow,
    completed_in_window: st.completedInWindow,
    queued_sends: st.queuedSends,
    max_backlog: st.maxBacklog,
    cpu_us_in_window: window.user + window.system,
    latency: loop.latency.toJSON(),
    service_time: loop.serviceTime.toJSON(),
    lag: loop.lag.toJSON(),
  };
  emit(result);
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? (err.stack ?? err.message) : String(err)),
);
