// Forwarding benchmark of the HTTP/2 engine: h2load (16 connections x 10 streams, 1 kB responses) against
// an origin directly, through the tiny forwarder on H2Connection, and through a node:http2 forwarder of
// the same shape (one upstream session per downstream session). Prints RPS, p50, p99 and CPU seconds
// of the forwarder; figures only. Not one of `npm run bench`'s scenarios.
// Run: node dist/bench/h2-forward.js [--duration 10]   (origin: nghttpd if installed, else node:http2)
import http2 from 'node:http2';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { TinyForwarder } from '../src/proxy/http2/wire/tiny-forwarder.js';
import { runH2load } from './h2.js';
import { columns } from './table.js';
import {
  BenchError,
  cpuSeconds,
  findExecutable,
  freePorts,
  installCleanupHandlers,
  makeTempDir,
  probeH2,
  requireTools,
  spawnManaged,
  stopManaged,
  waitUntil,
  type Managed,
} from './tools.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};

const BODY = Buffer.alloc(1024, 0x62);

/** A node:http2 forwarder: each downstream session gets one upstream session; streams are piped. */
function nodeForwarder(port: number, upstreamPort: number): void {
  const server = http2.createServer();
  // Nagle off on both sockets, as on ours (DESIGN.md's hot path rules): without it node's forwarder
  // waits on delayed ACKs.
  server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
  const ups = new WeakMap<http2.ServerHttp2Session, http2.ClientHttp2Session>();
  server.on('session', (session) => {
    const up = http2.connect(`http://127.0.0.1:${upstreamPort}`, {
      createConnection: () => net.connect({ port: upstreamPort, host: '127.0.0.1', noDelay: true }),
    });
    up.on('error', () => session.destroy());
    session.on('close', () => up.close());
    session.on('error', () => up.destroy());
    ups.set(session, up);
  });
  server.on('stream', (stream, headers) => {
    const up = ups.get(stream.session as http2.ServerHttp2Session);
    if (up === undefined) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    const req = up.request(headers, { endStream: stream.readableEnded || stream.endAfterHeaders });
    req.on('response', (h) => stream.respond(h));
    req.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on('error', () => req.close(http2.constants.NGHTTP2_CANCEL));
    if (!stream.endAfterHeaders) stream.pipe(req);
    req.pipe(stream);
  });
  server.listen(port, '127.0.0.1');
}

/** A node:http2 origin answering every request with 1 kB, when nghttpd is not installed. */
function nodeOrigin(port: number): void {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200, 'content-length': BODY.length });
    stream.end(BODY);
  });
  server.listen(port, '127.0.0.1');
}

async function child(): Promise<void> {
  const port = Number(arg('--listen'));
  const upstream = Number(arg('--upstream'));
  switch (arg('--serve')) {
    case 'tiny':
      await once(TinyForwarder.listen(port, upstream), 'listening');
      return;
    case 'node':
      return nodeForwarder(port, upstream);
    case 'origin':
      return nodeOrigin(port);
    default:
      throw new BenchError('--serve tiny|node|origin');
  }
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const durationS = Number(arg('--duration') ?? 10);
  const { h2load } = requireTools(['h2load']);
  const nghttpd = findExecutable('nghttpd');
  const tmpDir = makeTempDir('h2fwd');
  const [originPort, tinyPort, nodePort] = (await freePorts(3)) as [number, number, number];
  const self = process.argv[1] as string;
  const children: Managed[] = [];
  let originName: string;
  if (nghttpd !== undefined) {
    const docs = path.join(tmpDir, 'htdocs');
    (await import('node:fs')).mkdirSync(docs);
    writeFileSync(path.join(docs, 'index.html'), BODY);
    children.push(spawnManaged('nghttpd', nghttpd, ['--no-tls', '-d', docs, String(originPort)]));
    originName = 'nghttpd';
  } else {
    children.push(
      spawnManaged('origin', process.execPath, [self, '--serve', 'origin', '--listen', String(originPort)]),
    );
    originName = 'node:http2 origin';
  }
  const upstream = ['--upstream', String(originPort)];
  const tiny = spawnManaged('tiny', process.execPath, [
    self,
    '--serve',
    'tiny',
    '--listen',
    String(tinyPort),
    ...upstream,
  ]);
  const node = spawnManaged('node', process.execPath, [
    self,
    '--serve',
    'node',
    '--listen',
    String(nodePort),
    ...upstream,
  ]);
  children.push(tiny, node);
  for (const [port, m] of [
    [originPort, children[0]],
    [tinyPort, tiny],
    [nodePort, node],
  ] as const) {
    await waitUntil(`${m?.name ?? ''} on ${port}`, async () => (await probeH2(port)) === 200, 10_000, m);
  }
  const loadBefore = loadavg()[0] ?? 0;
  const rows: string[][] = [];
  const targets: [string, number, Managed | null][] = [
    [`${originName} directly`, originPort, null],
    ['tiny forwarder (H2Connection)', tinyPort, tiny],
    ['node:http2 forwarder', nodePort, node],
  ];
  for (const [name, port, proc] of targets) {
    const cpu0 = proc ? cpuSeconds(proc.pid) : null;
    const r = await runH2load({ h2load, port, durationS, connections: 16, tmpDir });
    const cpu1 = proc ? cpuSeconds(proc.pid) : null;
    const cpu = cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0).toFixed(1) : '-';
    rows.push([name, r.rps.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), String(r.errors), cpu]);
  }
  const loadAfter = loadavg()[0] ?? 0;
  for (const c of children) await stopManaged(c);
  console.log(
    `outrigger h2 forward bench: node ${process.version}, ${cpus().length} cpus, ` +
      `load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after, ${new Date().toISOString()}`,
  );
  console.log(`h2load -t 1 -c 16 -m 10 -D ${durationS}, 1 kB responses from ${originName}`);
  console.log(columns(['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'fwd cpu s'], rows, 1).join('\n'));
}

if (arg('--serve') !== undefined) {
  await child();
} else {
  await main();
}
