// A one-shot readiness check run inside a pod's network namespace (see probe.ts): an HTTP GET or a
// TCP connect, described by the JSON in argv[2]. Prints why, and exits 0 on success, 1 on failure.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { RuntimeCodes, RuntimeError } from '../errors.js';

interface HttpCheck {
  readonly kind: 'http';
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly scheme: 'HTTP' | 'HTTPS';
  readonly headers: readonly { readonly name: string; readonly value: string }[];
  readonly timeoutMs: number;
}
interface TcpCheck {
  readonly kind: 'tcp';
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}
export type NetCheck = HttpCheck | TcpCheck;

/** The kubelet reads at most this much of a probe's body (it only keeps it for the message). */
const MAX_BODY = 10 * 1024;

function done(ok: boolean, message: string): never {
  process.stdout.write(message);
  process.exit(ok ? 0 : 1);
}

function timedOut(ms: number): RuntimeError {
  return new RuntimeError(RuntimeCodes.PROBE_TIMEOUT, `timed out after ${ms} ms`);
}

/** A system error by its code (ECONNREFUSED), our own (a timeout) by its message. */
function why(e: NodeJS.ErrnoException): string {
  return e instanceof RuntimeError ? e.message : (e.code ?? e.message);
}

function checkHttp(c: HttpCheck): void {
  const headers: Record<string, string> = { 'user-agent': 'outrigger-probe/1', accept: '*/*', connection: 'close' };
  for (const h of c.headers) headers[h.name.toLowerCase()] = h.value;
  const mod = c.scheme === 'HTTPS' ? https : http;
  // As the kubelet does: an HTTPS probe does not verify the certificate (it checks liveness, not identity).
  const req = mod.request({
    host: c.host,
    port: c.port,
    path: c.path,
    method: 'GET',
    headers,
    rejectUnauthorized: false,
    agent: false,
  });
  req.setTimeout(c.timeoutMs, () => req.destroy(timedOut(c.timeoutMs)));
  const url = `${c.scheme.toLowerCase()}://${c.host}:${c.port}${c.path}`;
  req.on('error', (e: NodeJS.ErrnoException) => done(false, `GET ${url}: ${why(e)}`));
  req.on('response', (res) => {
    let n = 0;
    res.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_BODY) res.destroy();
    });
    const status = res.statusCode ?? 0;
    // Kubernetes: 200 <= status < 400 is a success.
    const finish = () => done(status >= 200 && status < 400, `HTTP ${status}`);
    res.on('end', finish);
    res.on('close', finish);
  });
  req.end();
}

function checkTcp(c: TcpCheck): void {
  const s = net.connect({ host: c.host, port: c.port });
  s.setTimeout(c.timeoutMs, () => s.destroy(timedOut(c.timeoutMs)));
  s.on('connect', () => {
    s.destroy();
    done(true, `connected to ${c.host}:${c.port}`);
  });
  s.on('error', (e: NodeJS.ErrnoException) => done(false, `connect ${c.host}:${c.port}: ${why(e)}`));
}

const check = JSON.parse(process.argv[2] ?? '{}') as NetCheck;
if (check.kind === 'http') checkHttp(check);
else if (check.kind === 'tcp') checkTcp(check);
else done(false, `probe-child: unknown check ${JSON.stringify(check)}`);
