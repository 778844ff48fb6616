// httpGet and tcpSocket probes, run by the runtime itself from inside the pod's network namespace: the
// socket is made in the pod's namespace by the native addon (socketInNetns: setns on the calling
// thread, socket(), setns back) and then connected and used by this process as any other. A socket
// belongs for life to the namespace it was made in, so `127.0.0.1` and the pod's own IP mean what they
// mean to the app (an app listening on loopback only can be probed) and the probe goes over `lo`,
// which the proxy-init rules leave alone: it never passes through the proxy.
//
// Until this, each probe was a Node process started in the namespace (about 50 ms of CPU each); with
// proxies probed every 200 ms until ready, a few pods starting at once spent both cores on probes and
// starved the very proxies they waited for.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { socketInNetns } from '../../proxy/transport/origdst.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';

interface HttpCheck {
  readonly kind: 'http';
  readonly host: string;
  readonly port: number;
  readonly path: string;
  readonly scheme: 'HTTP' | 'HTTPS';
  readonly headers: readonly { readonly name: string; readonly value: string }[];
}
interface TcpCheck {
  readonly kind: 'tcp';
  readonly host: string;
  readonly port: number;
}
export type NetCheck = HttpCheck | TcpCheck;

export interface NetCheckResult {
  readonly ok: boolean;
  readonly message: string;
}

/** The kubelet reads at most this much of a probe's body (it only keeps it for the message). */
const MAX_BODY = 10 * 1024;

const NETNS_RUN_DIR = '/run/netns';

function timedOut(ms: number): RuntimeError {
  return new RuntimeError(RuntimeCodes.PROBE_TIMEOUT, `timed out after ${ms} ms`);
}

/** A system error by its code (ECONNREFUSED), our own (a timeout) by its message. */
function why(e: NodeJS.ErrnoException): string {
  return e instanceof RuntimeError ? e.message : (e.code ?? e.message);
}

/** A TCP connection to host:port made from inside the network namespace `netns` (a name under
 *  /run/netns), or from this process's own namespace when undefined. A socket that cannot be made
 *  (no such namespace) fails as a connect would, on the returned socket. */
export function connectIn(netns: string | undefined, host: string, port: number): net.Socket {
  if (netns === undefined) return net.connect({ host, port });
  let fd: number;
  try {
    fd = socketInNetns(`${NETNS_RUN_DIR}/${netns}`, net.isIPv6(host) ? 6 : 4);
  } catch (err) {
    const s = new net.Socket();
    process.nextTick(() => s.destroy(err as Error));
    return s;
  }
  return new net.Socket({ fd, readable: true, writable: true }).connect({ host, port });
}

/** Runs one httpGet or tcpSocket check; never throws. Kubernetes' rules: an HTTP status from 200 to
 *  399 passes, an HTTPS probe does not verify the certificate, a TCP probe passes once connected. */
export function runNetCheck(c: NetCheck, netns: string | undefined, timeoutMs: number): Promise<NetCheckResult> {
  return c.kind === 'http' ? checkHttp(c, netns, timeoutMs) : checkTcp(c, netns, timeoutMs);
}

function checkHttp(c: HttpCheck, netns: string | undefined, timeoutMs: number): Promise<NetCheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    const url = `${c.scheme.toLowerCase()}://${c.host}:${c.port}${c.path}`;
    const done = (ok: boolean, message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, message });
    };
    const headers: Record<string, string> = { 'user-agent': 'outrigger-probe/1', accept: '*/*', connection: 'close' };
    for (const h of c.headers) headers[h.name.toLowerCase()] = h.value;
    const createConnection = (): net.Socket => {
      const s = connectIn(netns, c.host, c.port);
      if (c.scheme === 'HTTP') return s;
      return tls.connect({
        socket: s,
        rejectUnauthorized: false,
        ...(net.isIP(c.host) === 0 ? { servername: c.host } : {}),
      });
    };
    // No agent: with createConnection and no agent, the request uses that socket (agent: false would
    // make a fresh Agent, which connects by itself).
    const options = { host: c.host, port: c.port, path: c.path, method: 'GET', headers, createConnection };
    const req = c.scheme === 'HTTPS' ? https.request(options) : http.request(options);
    // One deadline for connect, handshake, head and body, as the kubelet's timeoutSeconds.
    const timer = setTimeout(() => done(false, `GET ${url}: ${why(timedOut(timeoutMs))}`), timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => done(false, `GET ${url}: ${why(e)}`));
    req.on('response', (res) => {
      let n = 0;
      const status = res.statusCode ?? 0;
      const finish = () => done(status >= 200 && status < 400, `HTTP ${status}`);
      res.on('data', (d: Buffer) => {
        n += d.length;
        if (n > MAX_BODY) finish();
      });
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
    req.end();
  });
}

function checkTcp(c: TcpCheck, netns: string | undefined, timeoutMs: number): Promise<NetCheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    const s = connectIn(netns, c.host, c.port);
    const done = (ok: boolean, message: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ ok, message });
    };
    const timer = setTimeout(() => done(false, `connect ${c.host}:${c.port}: ${why(timedOut(timeoutMs))}`), timeoutMs);
    s.on('connect', () => done(true, `connected to ${c.host}:${c.port}`));
    s.on('error', (e: NodeJS.ErrnoException) => done(false, `connect ${c.host}:${c.port}: ${why(e)}`));
  });
}
