// The `outrigger lab` HTML report in headless Chromium: rendered from the fixture (a realistic report,
// both modes, three steps, one figure not measured) and opened as a file, it makes no network request
// at all (every request is routed and any but the file itself fails the test), every chart's SVG is
// drawn with a non-zero size, and the figures it shows (tables, bars, points) are the fixture's. It
// fits a phone's width without scrolling sideways and prints. Screenshots and the PDF are kept in
// test-artifacts/. Also: the JSON fixture is the typed one (so the JSON is checked against LabReport).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, unavailable as unavailable_ } from './root-helpers.js';
import { LAB_REPORT_FIXTURE } from './fixtures/lab-report.js';
import type { Figure, LabMode, LabReport } from '../src/lab/types.js';
import { LAB_MODES } from '../src/lab/types.js';
import { renderLabHtml } from '../src/lab/report/html.js';
import { formatFigure, formatNumber, OVERHEAD_FIGURES, PHASES, type FigureKind } from '../src/lab/report/format.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

function unavailable(t: TestContext, why: string): void {
  unavailable_(t, 'lab-report', 'the HTML report in headless Chromium', why, 'chromium (apt-get install chromium)');
}

void test('test/fixtures/lab-report.json is the typed fixture (LabReport), as `outrigger lab --json` writes it', () => {
  const json: unknown = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/lab-report.json'), 'utf8'));
  assert.deepEqual(json, JSON.parse(JSON.stringify(LAB_REPORT_FIXTURE)));
});

/** What a cell, bar or point shows for the fixture: data-value and the text, keyed mode/key/step. */
interface Shown {
  readonly where: 'cell' | 'bar' | 'point';
  readonly mode: string;
  readonly key: string;
  readonly step: string | null;
  readonly value: string | null;
  readonly text: string;
}

function expected(report: LabReport): Map<string, { value: number | null; text: string }> {
  const out = new Map<string, { value: number | null; text: string }>();
  const put = (mode: LabMode, key: string, step: number | null, f: Figure, kind: FigureKind) =>
    out.set(`${mode}/${key}/${step ?? ''}`, { value: f.value, text: formatFigure(f, kind) });
  for (const mode of LAB_MODES) {
    for (const s of report.modes[mode].overhead) {
      for (const spec of OVERHEAD_FIGURES) put(mode, spec.key, s.pods_per_node, s[spec.key], spec.kind);
      for (const k of ['data_plane_processes', 'requests', 'failed_requests'] as const)
        out.set(`${mode}/${k}/${s.pods_per_node}`, { value: s[k], text: formatNumber(s[k]) });
    }
    for (const p of PHASES) for (const f of p.charts.flat()) put(mode, f.key, null, report.modes[mode][f.key], f.kind);
  }
  return out;
}

void test('the lab report in headless Chromium: no request, every chart drawn, the fixture figures shown', async (t) => {
  if (!existsSync(CHROMIUM)) return unavailable(t, `no ${CHROMIUM}`);
  const { chromium } = await import('playwright-core');
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-lab-report-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(ARTIFACTS, { recursive: true });
  const file = join(dir, 'report.html');
  await writeFile(file, renderLabHtml(LAB_REPORT_FIXTURE));
  const url = pathToFileURL(file).href;

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
  // Every request goes through the route: the file itself may load, anything else is refused and
  // recorded (and requests seen by the context are recorded too, routed or not).
  const refused: string[] = [];
  const seen: string[] = [];
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    refused.push(u);
    return route.abort();
  });
  context.on('request', (r) => seen.push(r.url()));
  context.on('websocket' as 'request', () => refused.push('websocket'));
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => errors.push(m.text()));
  await page.goto(url, { waitUntil: 'load' });

  await t.test('every chart is an SVG drawn with a non-zero size, its bars and lines too', async () => {
    const charts = await page.$$eval('svg.chart', (svgs) =>
      svgs.map((s) => {
        const r = s.getBoundingClientRect();
        const marks = [...s.querySelectorAll('rect.bar, polyline')].map((m) =>
          (m as unknown as { getBBox(): { width: number; height: number } }).getBBox(),
        );
        return { id: s.id, w: r.width, h: r.height, marks: marks.map((b) => Math.max(b.width, b.height)) };
      }),
    );
    assert.equal(charts.length, 12, charts.map((c) => c.id).join(', '));
    for (const c of charts) {
      assert.ok(c.w > 100 && c.h > 50, `${c.id}: ${c.w}×${c.h}`);
      assert.ok(c.marks.length > 0, `${c.id} draws no bar or line`);
    }
    const lines = charts.filter(
      (c) =>
        c.id.startsWith('chart-') &&
        ['chart-added-latency', 'chart-cpu', 'chart-mem-total', 'chart-mem-per-pod'].includes(c.id),
    );
    assert.equal(lines.length, 4);
    for (const c of lines) for (const m of c.marks) assert.ok(m > 0, `${c.id}: a line of size 0`);
  });

  await t.test("the figures shown in the tables, on the bars and at the points are the fixture's", async () => {
    const shown: Shown[] = await page.$$eval('td.fig[data-key], svg rect.bar, svg text.bar, svg .point', (els) =>
      els.map((el) => ({
        where: el.matches('td') ? ('cell' as const) : el.matches('.point') ? ('point' as const) : ('bar' as const),
        mode: el.getAttribute('data-mode') ?? '',
        key: el.getAttribute('data-key') ?? '',
        step: el.getAttribute('data-step'),
        value: el.getAttribute('data-value'),
        // A cell's value text; a bar's label is the text element after it.
        text: el.matches('td')
          ? (el.querySelector('.v')?.textContent ?? '')
          : el.matches('rect')
            ? (el.nextElementSibling?.textContent ?? '')
            : (el.textContent ?? ''),
      })),
    );
    const want = expected(LAB_REPORT_FIXTURE);
    const cells = shown.filter((s) => s.where === 'cell' && s.key !== 'confused_deputy');
    assert.equal(cells.length, want.size, 'one cell per figure of the fixture');
    for (const c of cells) {
      const w = want.get(`${c.mode}/${c.key}/${c.step ?? ''}`);
      assert.ok(w !== undefined, `a cell for ${c.mode}/${c.key}/${c.step} that the fixture does not have`);
      assert.equal(c.value, String(w.value), `${c.mode}/${c.key}/${c.step}`);
      assert.equal(c.text, w.text, `${c.mode}/${c.key}/${c.step}`);
    }
    const bars = shown.filter((s) => s.where === 'bar');
    assert.equal(bars.length, 2 * PHASES.flatMap((p) => p.charts.flat()).length);
    for (const b of bars) {
      const w = want.get(`${b.mode}/${b.key}/`);
      assert.ok(w !== undefined);
      const share = b.key.endsWith('_share');
      const v = w.value === null ? null : share ? Math.round(w.value * 1000) / 10 : w.value;
      assert.equal(b.value, String(v), `bar ${b.mode}/${b.key}`);
      assert.equal(b.text, v === null ? 'not measured' : share ? `${formatNumber(v)} %` : formatNumber(v));
    }
    const points = shown.filter((s) => s.where === 'point');
    assert.equal(points.length, 2 * 5 * 3, 'two modes, five series (p50, p99, CPU, memory, per pod), three steps');
    for (const p of points) {
      const w = want.get(`${p.mode}/${p.key}/${p.step ?? ''}`);
      assert.equal(p.value, String(w?.value ?? null), `point ${p.mode}/${p.key}/${p.step}`);
    }
    const nullPoint = points.find((p) => p.value === 'null');
    assert.equal(`${nullPoint?.mode}/${nullPoint?.key}/${nullPoint?.step}`, 'per-host/cpu_ms_per_request/8');
    const deputy = shown.filter((s) => s.key === 'confused_deputy').map((s) => `${s.mode}:${s.text}`);
    assert.deepEqual(deputy, ['sidecar:refused', 'per-host:refused']);
    const findings = await page.$$eval('#findings li', (lis) => lis.map((li) => li.textContent));
    assert.deepEqual(findings, LAB_REPORT_FIXTURE.findings);
  });

  await t.test('screenshots; on a phone the page does not scroll sideways; printed, the charts are there', async () => {
    await page.screenshot({ path: join(ARTIFACTS, 'lab-report.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const widths = (await page.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as number[];
    assert.ok((widths[0] ?? 0) <= (widths[1] ?? 0), `scrolls sideways at 390 px: ${widths.join(' > ')}`);
    const small = await page.$$eval('svg.chart', (s) => s.map((x) => x.getBoundingClientRect().width));
    for (const w of small) assert.ok(w > 300 && w <= 390, `a chart ${w} px wide on a phone`);
    await page.screenshot({ path: join(ARTIFACTS, 'lab-report-phone.png'), fullPage: true });
    await page.emulateMedia({ media: 'print' });
    const printed = await page.$$eval('svg.chart', (s) => s.filter((x) => x.getBoundingClientRect().height > 0).length);
    assert.equal(printed, 12);
    await page.pdf({ path: join(ARTIFACTS, 'lab-report.pdf'), format: 'A4' });
  });

  await t.test('hostile strings in the report stay text in the browser and load nothing', async () => {
    const evil = `<img src="http://127.0.0.1:9/x.png" onerror="document.title='owned'"><style>@import url(http://127.0.0.1:9/x.css)</style>`;
    const r: LabReport = {
      ...LAB_REPORT_FIXTURE,
      findings: [evil],
      machine: { ...LAB_REPORT_FIXTURE.machine, cpu_model: evil },
    };
    const hostileFile = join(dir, 'hostile.html');
    await writeFile(hostileFile, renderLabHtml(r));
    const hostileUrl = pathToFileURL(hostileFile).href;
    await context.unroute('**/*');
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u === hostileUrl) return route.continue();
      refused.push(u);
      return route.abort();
    });
    const p2 = await context.newPage();
    await p2.goto(hostileUrl, { waitUntil: 'load' });
    assert.equal(await p2.$$eval('#findings li', (lis) => lis.map((l) => l.textContent).join()), evil);
    assert.equal(await p2.$$eval('img', (imgs) => imgs.length), 0);
    assert.notEqual(await p2.title(), 'owned');
  });

  await t.test('the check can fail: a page that loads an image is seen making the request', async () => {
    const control = join(dir, 'control.html');
    await writeFile(control, '<!doctype html><img src="http://127.0.0.1:9/control.png">');
    const c = await browser.newContext({ javaScriptEnabled: false });
    const caught: string[] = [];
    await c.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('file:')) return route.continue();
      caught.push(u);
      return route.abort();
    });
    await (await c.newPage()).goto(pathToFileURL(control).href, { waitUntil: 'load' });
    await c.close();
    assert.deepEqual(caught, ['http://127.0.0.1:9/control.png']);
  });

  await t.test('no request was made but for the report files themselves', () => {
    assert.deepEqual(refused, []);
    assert.deepEqual(
      [...new Set(seen)].sort(),
      [url, url.replace(/report\.html$/, 'hostile.html')].sort(),
      'requests the page made',
    );
    assert.deepEqual(errors, []);
  });
});
