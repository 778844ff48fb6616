// End-to-end, as root (the consumer side): `outrigger demo` starts the sample shop with its
// traffic on a mesh of its own; then `stat` shows non-zero figures that match the traffic (the flaky
// replica near 70% success, the cart Service near 100% because retries hide it), `routes` shows the
// canary's 90/10 split, `top` names the callers, and the dashboard in headless Chromium shows the
// workloads with the same numbers as `stat` (a screenshot is kept in test-artifacts/); Ctrl-C (SIGINT)
// stops the demo and leaves nothing behind. Also: the demo run by a user who is not root explains why
// it needs root and how to run it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { sumMetric } from './metrics-text.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BIN, ROOT, show, unavailable as unavailable_ } from './root-helpers.js';
import { meshTest } from './mesh-harness.js';
import type { StatResult } from '../src/cli/stat.js';
import type { ObserveSnapshot, RouteRow, StatRow } from '../src/observe/stats.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

const NEEDS = 'iproute2, iptables, util-linux (setpriv), curl, python3 and chromium';

function unavailable(t: TestContext, why: string): void {
  unavailable_(t, 'runtime-demo', 'the end-to-end demo, stat and dashboard test', why, NEEDS);
}

void test('outrigger demo as a user who is not root: says why it needs root and the command to run', async (t) => {
  if (process.getuid?.() !== 0) return unavailable(t, 'not running as root (needed to switch to an unprivileged user)');
  if (spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).error !== undefined)
    return unavailable(t, 'missing setpriv');
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, 'demo'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (/EACCES|Cannot find module/.test(r.stderr))
    return unavailable(t, `user nobody cannot run the CLI from ${ROOT}: ${r.stderr.split('\n')[0] ?? ''}`);
  assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /needs root/);
  assert.match(r.stderr, /network\s+namespace/);
  assert.match(r.stderr, /iptables/);
  assert.match(
    r.stderr,
    new RegExp(`sudo ${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\S*bin/outrigger\\.js demo`),
  );
  assert.equal(r.stdout, '', 'nothing was started');
});

void test(
  'demo → stat, routes, top and the dashboard agree with the traffic → Ctrl-C leaves nothing',
  { timeout: 300_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-demo', {
      what: 'the end-to-end demo, stat and dashboard test',
      needs: NEEDS,
      check: () => (existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (apt-get install chromium)`),
    });
    if (mesh === undefined) return;
    // The demo makes the state directory itself (and removes it on Ctrl-C).
    const { stateDir } = mesh;
    const { bridge } = mesh.net;
    const common = ['--state-dir', stateDir];
    let out = '';
    const started = Date.now();
    const argv = [BIN, 'demo', ...common, ...mesh.netFlags(), '--port', '0', '--rate', '10'];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const demoExit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    mesh.defer(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        await Promise.race([demoExit, new Promise((r) => setTimeout(r, 60_000).unref())]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not start within 180 s:\n${out}`)), 180_000);
      const check = () => {
        const m = /The demo is running[\s\S]*?(http:\/\/127\.0\.0\.1:[0-9]+\/)/.exec(out);
        if (m !== null) {
          clearTimeout(timer);
          resolve(m[1] as string);
        }
      };
      child.stdout?.on('data', check);
      void demoExit.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the demo exited (${code}) before it was running:\n${out}`));
      });
    });
    console.log(`# demo running after ${((Date.now() - started) / 1000).toFixed(1)} s at ${url}`);
    assert.match(out, /pod frontend-\S+ ready, with its proxy \(\d\/8\)/);

    // Let the traffic and the scrapes build up a window of 30 s.
    await new Promise((r) => setTimeout(r, 33_000));
    assert.match(out, /Press Ctrl-C/);

    const json = async <T>(args: string[]): Promise<T> => {
      const r = await mesh.cli(args);
      assert.equal(r.code, 0, show(r));
      return JSON.parse(r.stdout) as T;
    };
    const byName = (rows: readonly StatRow[]) => Object.fromEntries(rows.map((r) => [r.name, r]));

    await t.test(
      'stat deploy -o json: every serving workload has traffic that matches what loadgen sends',
      async () => {
        const s = await json<StatResult>(['stat', 'deploy', '-o', 'json', '-t', '30s']);
        const d = byName(s.rows);
        console.log(
          `# stat deploy (${s.spanSec} s): ${s.rows.map((r) => `${r.name} ${r.rps} rps ${r.successRate ?? '-'} p99 ${r.p99 ?? '-'}`).join('; ')}`,
        );
        assert.ok(s.spanSec >= 20, `the figures cover ${s.spanSec} s`);
        for (const w of ['frontend', 'catalog', 'ratings-v1', 'cart', 'cart-flaky'])
          assert.ok((d[w]?.rps ?? 0) > 0, `${w}: ${JSON.stringify(d[w])}`);
        // loadgen sends 10 requests per second to the frontend (a busy machine sends fewer).
        assert.ok((d.frontend?.rps ?? 0) > 4 && (d.frontend?.rps ?? 0) < 13, `frontend ${d.frontend?.rps} rps`);
        // Every frontend request calls the catalog once.
        assert.ok(
          Math.abs((d.catalog?.rps ?? 0) - (d.frontend?.rps ?? 0)) <= 0.25 * (d.frontend?.rps ?? 0) + 0.5,
          `catalog ${d.catalog?.rps} vs frontend ${d.frontend?.rps}`,
        );
        assert.ok((d.frontend?.successRate ?? 0) >= 0.95, `frontend success ${d.frontend?.successRate}`);
        assert.equal(d.frontend?.meshed, 1);
        assert.ok((d.frontend?.p99 ?? 0) > 0);
        assert.ok((d.frontend?.proxyMemory ?? 0) > 10e6, 'the proxy memory is read');
        assert.ok((d.cache?.tcpConnections ?? 0) >= 1, 'the TCP cache has connections');
      },
    );

    await t.test(
      'stat svc: the cart Service looks healthy to its callers (retries hide the flaky replica)',
      async () => {
        const s = byName((await json<StatResult>(['stat', 'svc', '-o', 'json', '-t', '30s'])).rows);
        assert.ok((s.cart?.rps ?? 0) > 0, JSON.stringify(s.cart));
        assert.ok((s.cart?.successRate ?? 0) >= 0.97, `cart service success ${s.cart?.successRate}`);
        const from = byName(
          (await json<StatResult>(['stat', 'svc', '--from', 'deploy/frontend', '-o', 'json', '-t', '30s'])).rows,
        );
        assert.deepEqual(Object.keys(from).sort(), ['cart', 'catalog', 'ratings']);
      },
    );

    await t.test('routes: the canary route with its weights and the split that happened', async () => {
      const r = await json<{ routes: RouteRow[] }>(['routes', 'deploy/ratings-v1', '-o', 'json', '-t', '30s']);
      const canary = r.routes.find((x) => x.route === 'default/ratings-canary');
      assert.ok(canary !== undefined, JSON.stringify(r.routes));
      assert.ok(canary.rps > 0);
      const [v1, v2] = canary.backends;
      console.log(`# canary: ${JSON.stringify(canary.backends)}`);
      assert.deepEqual([v1?.service, v1?.weight, v2?.service, v2?.weight], ['ratings-v1', 0.9, 'ratings-v2', 0.1]);
      assert.ok(Math.abs((v1?.share ?? 0) - 0.9) <= 0.07, `v1 share ${v1?.share}`);
      const text = await mesh.cli(['routes', 'svc/cart']);
      assert.match(text.stdout, /default\/cart-retries\s+cart\s+/);
    });

    await t.test(
      'the denied call: the cache proxy refuses loadgen (only catalog and cart may call it) and counts it',
      async () => {
        const metrics = await mesh.metrics('deploy/cache');
        const denied = sumMetric(metrics, 'inbound_tcp_authz_deny_total', {});
        const allowed = sumMetric(metrics, 'inbound_tcp_authz_allow_total', {});
        console.log(`# cache: ${denied} connections denied, ${allowed} allowed`);
        assert.ok(denied >= 3, `loadgen tries every 5 s: ${denied} denied`);
        assert.ok(allowed >= 2, `catalog and cart get through: ${allowed} allowed`);
        const logs = await mesh.cli(['logs', 'deploy/loadgen']);
        assert.match(logs.stdout, /cache tried \d+: refused [1-9]\d* \(as the policy says\), answered 0/);
        const authz = await mesh.cli(['authz', 'deploy/cache']);
        assert.equal(authz.code, 0, show(authz));
        assert.match(authz.stdout, /cache-clients/);
      },
    );

    await t.test('top --once names the callers and the services called', async () => {
      const r = await mesh.cli(['top', 'deploy/frontend', '--once']);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /deploy\/loadgen \(via svc\/frontend\)/);
      assert.match(r.stdout, /svc\/catalog/);
    });

    await t.test('the dashboard in headless Chromium shows the workloads with the numbers stat shows', async () => {
      const { chromium } = await import('playwright-core');
      await mkdir(ARTIFACTS, { recursive: true });
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(url);
        await page.selectOption('#window', '30');
        const row = (w: string) => `#workload-table tr[data-workload="default/deploy/${w}"]`;
        await page.waitForSelector(`${row('frontend')} td[data-field="rps"]:not([data-value="0"])`, {
          timeout: 20_000,
        });
        await page.waitForSelector('#map [data-node="default/deploy/frontend"]');
        // The browser and stat read the same window within a second of each other.
        const shown = await page.$$eval('#workload-table tbody tr', (trs) =>
          trs.map((tr) => ({
            name: (tr.getAttribute('data-workload') ?? '').split('/')[2],
            rps: Number(tr.querySelector('[data-field="rps"]')?.getAttribute('data-value')),
            success: tr.querySelector('[data-field="success"]')?.getAttribute('data-value'),
          })),
        );
        const stat = byName((await json<StatResult>(['stat', 'deploy', '-o', 'json', '-t', '30s'])).rows);
        console.log(`# dashboard: ${shown.map((s) => `${s.name} ${s.rps}`).join(', ')}`);
        for (const w of ['frontend', 'catalog', 'ratings-v1', 'cart-flaky']) {
          const d = shown.find((s) => s.name === w);
          const c = stat[w];
          assert.ok(d !== undefined && c !== undefined, w);
          assert.ok(d.rps > 0, `${w} shows ${d.rps} rps`);
          assert.ok(Math.abs(d.rps - c.rps) <= 0.2 * c.rps + 0.5, `${w}: dashboard ${d.rps} rps, stat ${c.rps} rps`);
          assert.ok(
            Math.abs(Number(d.success) - (c.successRate ?? 0)) <= 0.1,
            `${w}: dashboard success ${d.success}, stat ${c.successRate}`,
          );
        }
        const edges = await page.$$eval('#map g.edge[data-from]', (gs) =>
          gs.map((g) => `${g.getAttribute('data-from')}>${g.getAttribute('data-to')}`),
        );
        assert.ok(edges.includes('default/deploy/loadgen>default/deploy/frontend'), edges.join(' '));
        assert.ok(edges.includes('default/deploy/frontend>default/deploy/catalog'), edges.join(' '));
        await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

        // The workload page: its routes, and the live tap (or the plain statement that there is none).
        await page.click('#map [data-node="default/deploy/ratings-v1"]');
        await page.waitForSelector('#route-table tr[data-route="default/ratings-canary"]', { timeout: 10_000 });
        await page.click('#tap-start');
        // (A string: this file is compiled without the DOM's types.)
        await page.waitForFunction(
          `/do not offer tap yet/.test(document.querySelector('#tap-status')?.textContent ?? '') || document.querySelectorAll('#tap-out tbody tr').length > 0`,
          undefined,
          { timeout: 15_000 },
        );
        const tapState = (await page.textContent('#tap-status')) ?? '';
        console.log(`# tap: ${tapState}`);
        await page.screenshot({ path: join(ARTIFACTS, 'dashboard-workload.png'), fullPage: true });
        assert.deepEqual(errors, [], 'no script errors');
      } finally {
        await browser.close();
      }
    });

    await t.test('stat deploy -t 1m: the flaky replica fails about 30% of its requests', async () => {
      // Checked last, over the longest window the test has: the balancer decides how much of the cart's
      // traffic cart-flaky gets, and its success rate needs enough requests to be near 70%.
      const s = await json<StatResult>(['stat', 'deploy', 'cart-flaky', '-o', 'json', '-t', '1m']);
      const flaky = s.rows[0];
      console.log(`# cart-flaky over ${s.spanSec} s: ${flaky?.requests} requests, success ${flaky?.successRate}`);
      assert.ok((flaky?.requests ?? 0) >= 20, `cart-flaky had ${flaky?.requests} requests`);
      const rate = flaky?.successRate ?? 1;
      assert.ok(rate > 0.45 && rate < 0.9, `cart-flaky success ${rate} (fails 30%)`);
    });

    await t.test('outrigger dashboard serves the same API on its own, prints its URL and stops on SIGINT', async () => {
      const d = spawn(process.execPath, [BIN, 'dashboard', '--port', '0', ...common], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<number | null>((r) => d.once('exit', (code) => r(code)));
      try {
        let text = '';
        const dashUrl = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no URL within 20 s: ${text}`)), 20_000);
          d.stdout.on('data', (b: Buffer) => {
            text += b.toString();
            const m = /Outrigger dashboard: (http:\/\/127\.0\.0\.1:[0-9]+\/)/.exec(text);
            if (m !== null) {
              clearTimeout(timer);
              resolve(m[1] as string);
            }
          });
        });
        const res = await fetch(`${dashUrl}api/overview?window=30`);
        assert.equal(res.status, 200);
        const body = (await res.json()) as { status: { phase: string }; observe: ObserveSnapshot };
        assert.equal(body.status.phase, 'Ready');
        assert.ok((body.observe.workloads.find((w) => w.name === 'frontend')?.rps ?? 0) > 0);
      } finally {
        d.kill('SIGINT');
      }
      assert.equal(await exited, 0);
    });

    await t.test('Ctrl-C (SIGINT) stops the demo and removes everything', async () => {
      child.kill('SIGINT');
      // (unref: a timer left running would keep the test file alive after its tests end)
      const code = await Promise.race([demoExit, new Promise((r) => setTimeout(() => r('timeout'), 90_000).unref())]);
      assert.equal(code, 0, out);
      assert.match(out, /removed: every pod, network namespace, link, iptables rule and process of the demo/);
      const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
      assert.doesNotMatch(netns, new RegExp(`outr-${bridge}-`), netns);
      assert.notEqual(
        spawnSync('ip', ['link', 'show', bridge], { stdio: 'ignore' }).status,
        0,
        `bridge ${bridge} is gone`,
      );
      const procs = spawnSync('pgrep', ['-f', stateDir], { encoding: 'utf8' }).stdout.trim();
      assert.equal(procs, '', `processes of the demo: ${procs}`);
      assert.equal(existsSync(stateDir), false, 'the state directory the demo made is removed');
    });
  },
);
