// The admin server and the proxy's life cycle: probes, metrics names, graceful shutdown by POST
// /shutdown and by SIGTERM (work in flight finishes, exit 0), and start-up refusing a bad config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeServer, freePort, listen, startTestProxy } from './helpers.js';
import { adminAuthorized, isLoopback } from '../src/proxy/admin/server.js';
import { outriggerVersion } from '../src/core/version.js';

const BIN = fileURLToPath(new URL('../../bin/outrigger.js', import.meta.url));

function get(
  url: string,
  method = 'GET',
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .request(url, { method, agent: false, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject)
      .end();
  });
}

void test('admin: /live, /ready, /version and /metrics with the metric names dashboards use', async (t) => {
  const server = http.createServer((_req, res) => res.end('hi'));
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const admin = `http://127.0.0.1:${proxy.admin.port}`;
  assert.deepEqual(await get(`${admin}/live`), { status: 200, body: 'live\n' });
  assert.deepEqual(await get(`${admin}/ready`), { status: 200, body: 'ready\n' });
  assert.equal((await get(`${admin}/nope`)).status, 404);
  const version = await get(`${admin}/version`);
  assert.equal(version.status, 200);
  assert.deepEqual(JSON.parse(version.body), { version: outriggerVersion(), node: process.version });
  assert.equal((await get(`${admin}/shutdown`)).status, 405);
  await get(`${proxy.url}/x`);
  const metrics = (await get(`${admin}/metrics`)).body;
  for (const name of [
    'request_total',
    'response_total',
    'response_latency_ms_bucket',
    'tcp_open_total',
    'tcp_close_total',
    'tcp_open_connections',
    'tcp_read_bytes_total',
    'tcp_write_bytes_total',
    'protocol_detect_timeout_total',
    'process_resident_memory_bytes',
  ]) {
    assert.match(metrics, new RegExp(`^(# TYPE )?${name}[{ ]`, 'm'), name);
  }
  assert.match(metrics, /response_latency_ms_bucket\{le="0.5",direction="outbound"/);
  assert.match(
    metrics,
    /request_total\{direction="outbound",target_addr="127\.0\.0\.1:\d+",authority="127\.0\.0\.1:\d+"\} 1/,
  );
});

void test('POST /shutdown drains: the request in flight finishes, new connections are refused', async (t) => {
  const server = http.createServer((_req, res) => setTimeout(() => res.end('finished'), 400));
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`);
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const inflight = get(`${proxy.url}/slow`);
  await new Promise((r) => setTimeout(r, 100));
  const shut = await get(`http://127.0.0.1:${proxy.admin.port}/shutdown`, 'POST');
  assert.equal(shut.status, 202);
  await assert.rejects(get(`${proxy.url}/late`), /ECONNREFUSED|ECONNRESET|socket hang up/);
  assert.deepEqual(await inflight, { status: 200, body: 'finished' });
  await proxy.closed;
});

void test('the CLI refuses a bad configuration with every problem, and exits 0 on SIGTERM after draining', async (t) => {
  const bad = spawn(process.execPath, [BIN, 'proxy', '--admin-port', 'x'], {
    env: { ...process.env, OUTRIGGER_PROXY_DETECT_TIMEOUT_MS: '-5', OUTRIGGER_PROXY_OPAQUE_PORTS: '70000' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  bad.stderr.on('data', (d) => (err += d));
  const [code] = (await once(bad, 'exit')) as [number];
  assert.equal(code, 2);
  assert.match(err, /--admin-port \(OUTRIGGER_PROXY_ADMIN_PORT\)/);
  assert.match(err, /--detect-timeout-ms \(OUTRIGGER_PROXY_DETECT_TIMEOUT_MS\)/);
  assert.match(err, /--opaque-ports \(OUTRIGGER_PROXY_OPAQUE_PORTS\).*70000/);

  const server = http.createServer((_req, res) => setTimeout(() => res.end('finished'), 400));
  const up = await listen(server);
  const [o, i, a] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      BIN,
      'proxy',
      '--outbound-port',
      String(o),
      '--inbound-port',
      String(i),
      '--admin-port',
      String(a),
      '--admin-addr',
      '127.0.0.1',
      '--inbound-addr',
      '127.0.0.1',
      '--log-level',
      'warn',
    ],
    { env: { ...process.env, OUTRIGGER_PROXY_STATIC_DESTINATION: `127.0.0.1:${up}` }, stdio: 'ignore' },
  );
  t.after(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await closeServer(server);
  });
  for (let n = 0; ; n++) {
    const ready = await get(`http://127.0.0.1:${a}/ready`).catch(() => ({ status: 0 }));
    if (ready.status === 200) break;
    assert.ok(n < 100, 'proxy became ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  const inflight = get(`http://127.0.0.1:${o}/slow`);
  await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  assert.deepEqual(await inflight, { status: 200, body: 'finished' });
  const [exitCode] = (await once(child, 'exit')) as [number];
  assert.equal(exitCode, 0);
});

void test('admin: the app probes given with --app-probes are forwarded to the app; a bad value stops start-up', async (t) => {
  const server = http.createServer((req, res) => res.writeHead(req.url === '/healthz' ? 204 : 500).end());
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`, {
    appProbes: JSON.stringify({
      'web-readiness': { port, scheme: 'HTTP', path: '/healthz' },
      'web-liveness': { port, scheme: 'TCP' },
    }),
  });
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
  });
  const admin = `http://127.0.0.1:${proxy.admin.port}`;
  assert.equal((await get(`${admin}/app-probe/web-readiness`)).status, 204);
  assert.equal((await get(`${admin}/app-probe/web-liveness`)).status, 200);
  assert.equal((await get(`${admin}/app-probe/other`)).status, 404);
  await assert.rejects(
    startTestProxy(undefined, { appProbes: '{"x": {"port": 0, "scheme": "HTTP"}}' }),
    /--app-probes \(OUTRIGGER_PROXY_APP_PROBES\): x\.port/,
  );
  await assert.rejects(startTestProxy(undefined, { appProbes: 'not json' }), /--app-probes.*must be JSON/);
});

void test('admin access: loopback and the bearer token, compared whole', () => {
  for (const a of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopback(a), a);
  for (const a of ['10.244.0.7', '::ffff:10.0.0.1', '::2', '1127.0.0.1', undefined]) assert.ok(!isLoopback(a), a);
  assert.ok(adminAuthorized('127.0.0.1', undefined, undefined), 'loopback needs no token');
  assert.ok(adminAuthorized('10.0.0.1', 'Bearer s3cret', 's3cret'));
  for (const auth of [undefined, '', 'Bearer ', 'Bearer s3cre', 'Bearer s3cretX', 'Basic s3cret', 'bearer s3cret'])
    assert.ok(!adminAuthorized('10.0.0.1', auth, 's3cret'), String(auth));
  assert.ok(!adminAuthorized('10.0.0.1', 'Bearer ', ''), 'an empty token opens nothing');
  assert.ok(!adminAuthorized('10.0.0.1', 'Bearer x', undefined), 'no token: loopback only');
});

/** The machine's first non-loopback IPv4 address: requests to it come from it, not from loopback. */
function otherAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

void test('admin from another address: probes, metrics and version open; identity and policy need the token; shutdown refused', async (t) => {
  let addr = otherAddress();
  if (addr === undefined && process.getuid?.() === 0) {
    // A machine with only loopback (a CI container): an address of the benchmarking range added to lo
    // gives a source that is not loopback (the admin server tells them apart by address, not by
    // interface); removed after the test.
    const ip = (...a: string[]) => spawnSync('ip', a, { encoding: 'utf8' });
    addr = '198.18.211.1';
    const added = ip('addr', 'add', `${addr}/32`, 'dev', 'lo');
    assert.equal(added.status, 0, `ip addr add ${addr}/32 dev lo: ${added.stderr}`);
    t.after(() => void ip('addr', 'del', `${addr}/32`, 'dev', 'lo'));
  }
  if (addr === undefined) {
    const msg = 'proxy-admin.test.ts: no non-loopback IPv4 address and not root (to add one)';
    console.error(`\n*** ${msg}: ${process.env.CI === 'true' ? 'FAILS (CI=true)' : 'SKIPPED'} ***\n`);
    if (process.env.CI === 'true') assert.fail(msg);
    return t.skip(msg);
  }
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-admin-'));
  const tokenFile = join(dir, 'tap-token');
  await writeFile(tokenFile, 'admin-t0ken\n', { mode: 0o600 });
  const server = http.createServer((_req, res) => res.end('hi'));
  const port = await listen(server);
  const proxy = await startTestProxy(`127.0.0.1:${port}`, {
    adminAddr: '0.0.0.0',
    tapTokenFile: tokenFile,
    appProbes: JSON.stringify({ web: { port, scheme: 'TCP' } }),
  });
  t.after(async () => {
    await proxy.close();
    await closeServer(server);
    await rm(dir, { recursive: true, force: true });
  });
  const far = `http://${addr}:${proxy.admin.port}`;
  const near = `http://127.0.0.1:${proxy.admin.port}`;
  const bearer = { authorization: 'Bearer admin-t0ken' };
  const wrong = { authorization: 'Bearer admin-t0keN' };
  for (const path of ['/live', '/ready', '/metrics', '/version', '/app-probe/web'])
    assert.equal((await get(`${far}${path}`)).status, 200, `${path} from ${addr}`);
  for (const path of ['/identity', '/policy']) {
    const denied = await get(`${far}${path}`);
    assert.equal(denied.status, 401, `${path} without the token from ${addr}`);
    assert.match(denied.body, /needs the mesh admin token/);
    assert.equal((await get(`${far}${path}`, 'GET', wrong)).status, 401, `${path} with a wrong token`);
    // With the token, or from loopback, the request goes through (404: this proxy has no mTLS, no policy).
    assert.equal((await get(`${far}${path}`, 'GET', bearer)).status, 404, `${path} with the token`);
    assert.equal((await get(`${near}${path}`)).status, 404, `${path} from loopback`);
  }
  assert.equal((await get(`${far}/tap`)).status, 401, '/tap without the token');
  assert.equal((await get(`${near}/tap`)).status, 401, '/tap needs the token from loopback too');
  const shut = await get(`${far}/shutdown`, 'POST', bearer);
  assert.equal(shut.status, 403, '/shutdown from another address, token or not');
  assert.equal((await get(`${near}/live`)).status, 200, 'still running');
});
