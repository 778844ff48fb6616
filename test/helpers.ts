// Shared test plumbing: an in-process proxy bound to free ports, and small real servers to put behind
// it. Everything a helper starts is stopped by the returned `close`, which tests call in t.after.
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { loadProxyConfig } from '../src/proxy/config.js';
import type { SettingName } from '../src/proxy/env.js';
import { startProxy, type RunningProxy } from '../src/proxy/main.js';
import { createLogger } from '../src/core/log.js';
import { sumMetric } from './metrics-text.js';

export { freePort, waitFor } from './basics.js';

export interface TestProxy extends RunningProxy {
  /** URL of the outbound listener, e.g. http://127.0.0.1:PORT */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts a proxy on free loopback ports; by default every connection goes to `destination`. */
export async function startTestProxy(
  destination: string | undefined,
  settings: Partial<Record<SettingName, string>> = {},
): Promise<TestProxy> {
  const cfg = loadProxyConfig(
    {
      outboundPort: '0',
      inboundPort: '0',
      adminPort: '0',
      outboundAddr: '127.0.0.1',
      inboundAddr: '127.0.0.1',
      adminAddr: '127.0.0.1',
      staticDestination: destination,
      drainTimeoutMs: '2000',
      logLevel: process.env.OUTRIGGER_TEST_LOG ?? 'silent',
      ...settings,
    },
    {},
  );
  const p = await startProxy(cfg, createLogger('test-proxy', cfg.logLevel));
  return {
    ...p,
    url: `http://127.0.0.1:${p.outbound.port}`,
    close: () => p.shutdown(),
  };
}

export function listen(server: net.Server | http.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

export function closeServer(server: net.Server | http.Server): Promise<void> {
  return new Promise((resolve) => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** Reads the proxy's /metrics and returns the sum of a metric's samples whose labels include `match`. */
export async function metricValue(
  proxy: RunningProxy,
  name: string,
  match: Record<string, string> = {},
): Promise<number> {
  return sumMetric(await (await fetch(`http://127.0.0.1:${proxy.admin.port}/metrics`)).text(), name, match);
}

/** Sends raw bytes on a new connection and collects everything until the server closes (or `ms` pass). */
export function rawExchange(port: number, data: string | Buffer | (string | Buffer)[], ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }, ms);
    s.on('data', (d) => chunks.push(d));
    s.on('error', (e) => {
      clearTimeout(timer);
      if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    for (const d of Array.isArray(data) ? data : [data]) s.write(d);
  });
}

/** A plain HTTP/1.1 echo server: answers with method, url, headers and the body length it read. */
export async function startEchoServer(): Promise<{ port: number; server: http.Server; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          headers: req.headers,
          bodyBytes: n,
          httpVersion: req.httpVersion,
        }),
      );
    });
  });
  const port = await listen(server);
  return { port, server, close: () => closeServer(server) };
}
