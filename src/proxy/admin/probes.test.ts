import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from './server.js';
import { ProxyMetrics } from '../metrics.js';
import type { AppProbeTarget } from './probes.js';

const listen = (s: net.Server) =>
  new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as AddressInfo).port)));

void test("admin /app-probe/<name>: the app's probes forwarded over loopback, with the app's answer; nothing else", async () => {
  const seen: { path?: string; header?: string }[] = [];
  const app = http.createServer((req, res) => {
    seen.push({
      ...(req.url !== undefined ? { path: req.url } : {}),
      ...(typeof req.headers['x-probe'] === 'string' ? { header: req.headers['x-probe'] } : {}),
    });
    res.writeHead(req.url?.startsWith('/healthz') === true ? 200 : 500).end();
  });
  const appPort = await listen(app);
  const closed = net.createServer();
  const closedPort = await listen(closed);
  await new Promise<void>((r) => closed.close(() => r()));
  const probes = new Map<string, AppProbeTarget>([
    [
      'app-readiness',
      { port: appPort, scheme: 'HTTP', path: '/healthz?full=1', headers: [{ name: 'X-Probe', value: 'kubelet' }] },
    ],
    ['app-liveness', { port: appPort, scheme: 'HTTP', path: '/broken' }],
    ['app-startup', { port: appPort, scheme: 'TCP' }],
    ['db-liveness', { port: closedPort, scheme: 'TCP' }],
    ['gone-readiness', { port: closedPort, scheme: 'HTTP', path: '/' }],
  ]);
  const admin = createAdminServer({
    metrics: new ProxyMetrics({ tls: false }),
    ready: () => true,
    shutdown: () => undefined,
    appProbes: probes,
  });
  const adminPort = await listen(admin);
  try {
    const get = async (path: string, method = 'GET') =>
      (await fetch(`http://127.0.0.1:${adminPort}${path}`, { method })).status;
    assert.equal(await get('/app-probe/app-readiness'), 200);
    assert.deepEqual(seen.at(-1), { path: '/healthz?full=1', header: 'kubelet' });
    assert.equal(await get('/app-probe/app-liveness'), 500, "the app's failure is the probe's");
    assert.equal(await get('/app-probe/app-startup'), 200);
    assert.equal(await get('/app-probe/db-liveness'), 503);
    assert.equal(await get('/app-probe/gone-readiness'), 503);
    assert.equal(await get('/app-probe/other'), 404, 'only the probes it was given');
    assert.equal(await get('/app-probe/app-readiness', 'POST'), 405);
  } finally {
    admin.closeAllConnections();
    await new Promise<void>((r) => admin.close(() => r()));
    app.closeAllConnections();
    await new Promise<void>((r) => app.close(() => r()));
  }
});
