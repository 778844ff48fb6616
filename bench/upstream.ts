// Benchmark upstream: an HTTP/1.1 server and an h2c (prior-knowledge HTTP/2) server on loopback that
// answer every request with the same 1 kB body. Runs as its own process so it never shares the driver's loop.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** What the upstream prints as one JSON line on stdout once both servers listen. */
export interface UpstreamPorts {
  http1: number;
  h2: number;
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

function onH2Stream(stream: http2.ServerHttp2Stream): void {
  stream.on('error', ignore);
  stream.respond(H2_HEADERS);
  stream.end(BODY);
}

function listen(server: http.Server | http2.Http2Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

async function main(): Promise<void> {
  const h1 = http.createServer(onHttp1Request);
  // Proxies keep idle pooled connections between load runs; don't close them under their feet.
  h1.keepAliveTimeout = 120_000;
  h1.headersTimeout = 130_000;
  h1.on('clientError', (_err, socket) => socket.destroy());

  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  h2.on('stream', onH2Stream);
  h2.on('sessionError', ignore);

  const ports: UpstreamPorts = { http1: await listen(h1), h2: await listen(h2) };
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
