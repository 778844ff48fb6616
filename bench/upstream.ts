// Benchmark upstream: an HTTP/1.1 server and an h2c (prior-knowledge HTTP/2) server on loopback that
// answer every request with the same 1 kB body. Runs as its own process so it never shares the driver's loop.
// For the balance scenario it also runs three HTTP/1.1 replicas (the last one adds --slow-ms to every
// response; the others answer at once), counts the requests each receives, and serves the counts as
// JSON on a stats port (`GET /counts`) so the driver can diff them around each load run. `GET /connections`
// answers the TCP connections the HTTP/1.1 server has accepted so far (a JSON number): the mtls scenario
// uses it to tell whether a proxy pair reused its connections to the upstream. `--listen-host H` (default
// 127.0.0.1) is where they listen: the mesh-size scenario, in a network namespace of its own, gives
// 0.0.0.0, so that every loopback address of its Services' endpoints (127.1.x.y) reaches the one upstream.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { REPLICAS, SLOW_REPLICA } from './types.js';

/** What the upstream prints as one JSON line on stdout once both servers listen. */
export interface UpstreamPorts {
  http1: number;
  h2: number;
  /** The balance scenario's HTTP/1.1 replicas; the last one is the slow one. */
  replicas: number[];
  /** `GET /counts` answers the requests each replica received so far, as a JSON array of numbers;
   *  `GET /connections` the connections the http1 server accepted so far, as a JSON number. */
  stats: number;
}

const BODY = Buffer.alloc(1024, 'x');
const HTTP1_HEADERS = { 'content-type': 'text/plain', 'content-length': String(BODY.length) };
const H2_HEADERS = { ':status': 200, 'content-type': 'text/plain', 'content-length': String(BODY.length) };

function ignore(): void {
  // A client resetting a stream or closing a socket mid-response is normal under load.
}

function onHttp1Request(req: http.IncomingMessage, res: http.ServerResponse): void {
  req.resume();
  res.writeHead(200, HTTP1_HEADERS);
  res.end(BODY);
}

/** The replica's request handler: counts, then answers at once or after slowMs. */
function replicaHandler(counts: number[], index: number, slowMs: number): http.RequestListener {
  return (req, res) => {
    counts[index] = (counts[index] ?? 0) + 1;
    req.resume();
    if (slowMs <= 0) {
      res.writeHead(200, HTTP1_HEADERS);
      res.end(BODY);
      return;
    }
    setTimeout(() => {
      if (res.destroyed) return;
      res.writeHead(200, HTTP1_HEADERS);
      res.end(BODY);
    }, slowMs);
  };
}

function http1Server(handler: http.RequestListener): http.Server {
  const server = http.createServer(handler);
  // Proxies keep idle pooled connections between load runs; don't close them under their feet.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}

/** `--slow-ms N` from our argv (the driver passes its option); 200 when absent. */
function slowMsArg(argv: readonly string[]): number {
  const i = argv.indexOf('--slow-ms');
  const value = i >= 0 ? Number(argv[i + 1]) : 200;
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`--slow-ms wants an integer >= 0, got "${argv[i + 1] ?? ''}"`);
  return value;
}

function onH2Stream(stream: http2.ServerHttp2Stream): void {
  stream.on('error', ignore);
  stream.respond(H2_HEADERS);
  stream.end(BODY);
}

/** `--listen-host H` from our argv; 127.0.0.1 when absent. */
const LISTEN_HOST = ((): string => {
  const i = process.argv.indexOf('--listen-host');
  return i >= 0 ? (process.argv[i + 1] ?? '127.0.0.1') : '127.0.0.1';
})();

function listen(server: http.Server | http2.Http2Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LISTEN_HOST, () => resolve((server.address() as AddressInfo).port));
  });
}

async function main(): Promise<void> {
  const slowMs = slowMsArg(process.argv.slice(2));
  const h1 = http1Server(onHttp1Request);
  let h1Connections = 0;
  h1.on('connection', () => h1Connections++);

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  h2.on('stream', onH2Stream);
  h2.on('sessionError', ignore);

  const counts = Array.from({ length: REPLICAS }, () => 0);
  const replicas: number[] = [];
  for (let i = 0; i < REPLICAS; i++)
    replicas.push(await listen(http1Server(replicaHandler(counts, i, i === SLOW_REPLICA ? slowMs : 0))));
  const stats = http.createServer((req, res) => {
    req.resume();
    const body = JSON.stringify(req.url === '/connections' ? h1Connections : counts);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  });

  const ports: UpstreamPorts = { http1: await listen(h1), h2: await listen(h2), replicas, stats: await listen(stats) };
  process.stdout.write(JSON.stringify(ports) + '\n');

  // The driver holds our stdin open; when it goes away (even by SIGKILL) we go too.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench upstream: ${String(err)}\n`);
  process.exit(1);
});
