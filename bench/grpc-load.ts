// The grpc scenario's load generator, in its own process: @grpc/grpc-js clients, closed loop. `--channels`
// channels (each its own HTTP/2 connection: no shared subchannel pool), `--concurrency` calls in flight
// on each, for `--duration` seconds; `--mode unary` (one message each way) or `stream` (one request,
// STREAM_MESSAGES answers). Prints one JSON line: calls, errors, messages, the latency histogram of whole
// calls, and the CPU this process used as a fraction of one core (near 1: the generator itself, on its
// single thread, is what limits the rate).
import { parseArgs } from 'node:util';
import grpc from '@grpc/grpc-js';
import { Histogram } from './histogram.js';
import { ECHO_SERVICE, PAYLOAD_BYTES, STREAM_MESSAGES, streamRequest } from './grpc-service.js';

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    mode: { type: 'string', default: 'unary' },
    duration: { type: 'string', default: '10' },
    channels: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '10' },
  },
});
const target = values.target;
if (target === undefined) throw new Error('grpc-load: --target host:port is required');
const stream = values.mode === 'stream';
const durationMs = Number(values.duration) * 1000;
const Echo = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
const request = stream ? streamRequest(STREAM_MESSAGES, payload) : payload;

interface EchoClient extends grpc.Client {
  unary(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  stream(req: Buffer): grpc.ClientReadableStream<Buffer>;
}

const hist = new Histogram();
let calls = 0;
let errors = 0;
let messages = 0;
const firstErrors: string[] = [];
const deadline = performance.now() + durationMs;

function failed(err: Error): void {
  errors++;
  if (firstErrors.length < 5) firstErrors.push(err.message);
}

/** One call; resolves when it ended (either way). */
function call(client: EchoClient): Promise<void> {
  const start = performance.now();
  const done = (ok: boolean): void => {
    if (!ok) return;
    calls++;
    hist.record(Math.round((performance.now() - start) * 1e6));
  };
  if (!stream) {
    return new Promise((resolve) => {
      client.unary(request, (err) => {
        if (err) failed(err);
        else messages++;
        done(err === null);
        resolve();
      });
    });
  }
  return new Promise((resolve) => {
    let got = 0;
    const s = client.stream(request);
    s.on('data', () => got++);
    s.on('error', (err: Error) => {
      failed(err);
      resolve();
    });
    s.on('end', () => {
      messages += got;
      if (got !== STREAM_MESSAGES) failed(new Error(`stream ended after ${got} of ${STREAM_MESSAGES} messages`));
      done(got === STREAM_MESSAGES);
      resolve();
    });
  });
}

async function worker(client: EchoClient): Promise<void> {
  while (performance.now() < deadline) await call(client);
}

async function main(): Promise<void> {
  const clients: EchoClient[] = [];
  for (let i = 0; i < Number(values.channels); i++) {
    clients.push(
      new Echo(target as string, grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      }) as unknown as EchoClient,
    );
  }
  // Connected before the clock starts.
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve()))),
    ),
  );
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const workers: Promise<void>[] = [];
  for (const c of clients) for (let j = 0; j < Number(values.concurrency); j++) workers.push(worker(c));
  await Promise.all(workers);
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of clients) c.close();
  process.stdout.write(
    JSON.stringify({
      calls,
      errors,
      messages,
      wall_s: wallS,
      cpu_cores: (cpu.user + cpu.system) / 1e6 / wallS,
      first_errors: firstErrors,
      histogram: hist.toJSON(),
    }) + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`grpc-load: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
