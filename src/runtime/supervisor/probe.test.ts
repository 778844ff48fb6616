// Probes: resolving manifest probes, running each kind for real on the host namespace, and the loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../../test/basics.js';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { ProbeLoop, resolveProbe, runProbe, type ProbeAction, type ProbeResult } from './probe.js';
import type { Probe } from '../manifests/index.js';
import { spawnSync } from 'node:child_process';
import { listenInNetns } from '../../proxy/transport/origdst.js';

const probeDefaults = {
  initialDelaySeconds: 0,
  periodSeconds: 10,
  timeoutSeconds: 1,
  successThreshold: 1,
  failureThreshold: 3,
};
const ctx = { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: '/' };

void test('resolveProbe: named ports, the pod IP as default host', () => {
  const ports = [
    { name: 'http', containerPort: 8080, protocol: 'TCP' as const },
    { name: 'dns', containerPort: 53, protocol: 'UDP' as const },
  ];
  const http: Probe = {
    ...probeDefaults,
    httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP', httpHeaders: [] },
  };
  assert.deepEqual(resolveProbe(http, ports, '10.0.0.9').action, {
    kind: 'http',
    host: '10.0.0.9',
    port: 8080,
    path: '/healthz',
    scheme: 'HTTP',
    headers: [],
  });
  const tcp: Probe = { ...probeDefaults, tcpSocket: { port: 9000, host: '127.0.0.1' } };
  assert.deepEqual(resolveProbe(tcp, ports, '10.0.0.9').action, { kind: 'tcp', host: '127.0.0.1', port: 9000 });
  const udpName: Probe = { ...probeDefaults, tcpSocket: { port: 'dns' } };
  const bad = resolveProbe(udpName, ports, '10.0.0.9').action;
  assert.equal(bad.kind, 'invalid', 'a UDP port name is not a TCP port');
  assert.match((bad as { message: string }).message, /port name "dns"/);
  const exec: Probe = { ...probeDefaults, periodSeconds: 3, exec: { command: ['true'] } };
  assert.deepEqual(resolveProbe(exec, ports, '10.0.0.9'), {
    action: { kind: 'exec', command: ['true'] },
    timing: { initialDelayMs: 0, periodMs: 3000, timeoutMs: 1000, successThreshold: 1, failureThreshold: 3 },
  });
});

void test('runProbe: http 2xx/3xx pass, 5xx and refused fail, headers sent', async (t) => {
  let seen: http.IncomingHttpHeaders = {};
  const server = http.createServer((req, res) => {
    seen = req.headers;
    const code = Number(req.url?.slice(1));
    res.writeHead(code, code === 302 ? { location: '/elsewhere' } : {});
    res.end('body');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = (path: string): ProbeAction => ({
    kind: 'http',
    host: '127.0.0.1',
    port,
    path,
    scheme: 'HTTP',
    headers: [{ name: 'X-Probe', value: 'yes' }],
  });
  assert.deepEqual(await runProbe(get('/200'), ctx, 1000), { ok: true, message: 'HTTP 200' });
  assert.equal(seen['x-probe'], 'yes');
  assert.equal((await runProbe(get('/302'), ctx, 1000)).ok, true);
  assert.deepEqual(await runProbe(get('/503'), ctx, 1000), { ok: false, message: 'HTTP 503' });
  const closed = await freePort();
  const refused = await runProbe(
    { kind: 'http', host: '127.0.0.1', port: closed, path: '/', scheme: 'HTTP', headers: [] },
    ctx,
    1000,
  );
  assert.equal(refused.ok, false);
  assert.match(refused.message, /ECONNREFUSED/);
});

void test('runProbe: http timeout, tcp connect, exec exit codes and timeout', async (t) => {
  const silent = net.createServer(() => undefined); // accepts, never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => silent.close());
  const port = (silent.address() as AddressInfo).port;
  const slow = await runProbe(
    { kind: 'http', host: '127.0.0.1', port, path: '/', scheme: 'HTTP', headers: [] },
    ctx,
    300,
  );
  assert.equal(slow.ok, false);
  assert.match(slow.message, /timed out after 300 ms/);
  assert.equal((await runProbe({ kind: 'tcp', host: '127.0.0.1', port }, ctx, 1000)).ok, true);
  assert.equal((await runProbe({ kind: 'tcp', host: '127.0.0.1', port: await freePort() }, ctx, 1000)).ok, false);

  assert.equal((await runProbe({ kind: 'exec', command: ['true'] }, ctx, 1000)).ok, true);
  const failed = await runProbe({ kind: 'exec', command: ['sh', '-c', 'echo not yet; exit 3'] }, ctx, 1000);
  assert.deepEqual(failed, { ok: false, message: 'exec sh -c echo not yet; exit 3: exit 3: not yet' });
  const began = Date.now();
  const hung = await runProbe({ kind: 'exec', command: ['sh', '-c', 'sleep 30 & sleep 30'] }, ctx, 200);
  assert.equal(hung.ok, false);
  assert.match(hung.message, /timed out after 200 ms/);
  assert.ok(Date.now() - began < 5000, 'the timeout kills the whole group, background job included');
  const missing = await runProbe({ kind: 'exec', command: ['/nonexistent/probe'] }, ctx, 1000);
  assert.equal(missing.ok, false);
});

void test('ProbeLoop: initial delay, period, thresholds, stop', async () => {
  const script = [true, false, false, true]; // then failures
  const calls: number[] = [];
  const t0 = Date.now();
  const changes: string[] = [];
  const loop = new ProbeLoop(
    {
      action: { kind: 'exec', command: ['unused'] },
      timing: { initialDelayMs: 80, periodMs: 40, timeoutMs: 10, successThreshold: 1, failureThreshold: 2 },
    },
    ctx,
    (ready, r) => changes.push(`${ready ? 'ready' : 'unready'}:${r.message}`),
    async (): Promise<ProbeResult> => {
      calls.push(Date.now() - t0);
      const ok = script[calls.length - 1] ?? false;
      return { ok, message: `#${calls.length}` };
    },
  );
  loop.start();
  await new Promise((r) => setTimeout(r, 400));
  loop.stop();
  const n = calls.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(calls.length, n, 'no probe after stop');
  assert.ok((calls[0] ?? 0) >= 75, `first probe after the initial delay, at ${calls[0]} ms`);
  assert.ok(n >= 5 && n <= 10, `about one probe per period, got ${n}`);
  assert.deepEqual(
    changes.slice(0, 2),
    ['ready:#1', 'unready:#3'],
    'ready at once; unready after two failures in a row',
  );
  assert.equal(changes[2], 'ready:#4');
  assert.equal(changes[3], 'unready:#6');
  assert.equal(loop.ready, false);
});

// In a pod's namespace, from this process: a server listening on 127.0.0.1 inside a fresh namespace
// (its socket opened there by the addon) is reached by the probe with that namespace, and not from the
// host's, where nothing listens on that port; no process is started for it.
void test('runProbe: http and tcp from inside a network namespace, no process started', async (t) => {
  if (process.getuid?.() !== 0) {
    const msg = 'probe.test.ts: the network-namespace probe needs root (ip netns add)';
    console.error(`\n*** ${msg}: ${process.env.CI === 'true' ? 'FAILS (CI=true)' : 'SKIPPED'} ***\n`);
    if (process.env.CI === 'true') assert.fail(msg);
    return t.skip(msg);
  }
  const ns = `outr-probe-${process.pid}`;
  const ip = (...a: string[]) => spawnSync('ip', a, { encoding: 'utf8' });
  const made = ip('netns', 'add', ns);
  assert.equal(made.status, 0, made.stderr);
  t.after(() => void ip('netns', 'del', ns));
  assert.equal(ip('-n', ns, 'link', 'set', 'lo', 'up').status, 0);
  const fd = listenInNetns(`/run/netns/${ns}`, '127.0.0.1', 0, 16);
  const server = http.createServer((_req, res) => res.end('inside'));
  await new Promise<void>((r) => server.listen({ fd }, r));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const get: ProbeAction = { kind: 'http', host: '127.0.0.1', port, path: '/', scheme: 'HTTP', headers: [] };
  const inNs = { ...ctx, netns: ns };
  assert.deepEqual(await runProbe(get, inNs, 1000), { ok: true, message: 'HTTP 200' });
  assert.equal((await runProbe({ kind: 'tcp', host: '127.0.0.1', port }, inNs, 1000)).ok, true);
  const fromHost = await runProbe(get, ctx, 1000);
  assert.equal(fromHost.ok, false, 'the host namespace has no such listener');
  const gone = await runProbe(get, { ...ctx, netns: `${ns}-missing` }, 1000);
  assert.equal(gone.ok, false);
  assert.match(gone.message, /ENOENT/);
});
