// The HTML report, as a string: self-contained (nothing to fetch), every figure with its method, nulls
// shown as not measured with the reason, and every report string escaped (hostile ones included).
// test/lab-report.test.ts opens it in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAB_REPORT_FIXTURE } from '../../../test/fixtures/lab-report.js';
import type { Figure, LabReport } from '../types.js';
import { LAB_MODES } from '../types.js';
import { escapeHtml } from './format.js';
import { renderLabHtml } from './html.js';

/** Every Figure in a report, wherever it is. */
function figures(report: LabReport): Figure[] {
  const out: Figure[] = [];
  const walk = (v: unknown) => {
    if (v === null || typeof v !== 'object') return;
    if ('value' in v && 'unit' in v && 'method' in v) out.push(v as Figure);
    else for (const x of Object.values(v)) walk(x);
  };
  walk(report.modes);
  return out;
}

void test('the report asks for nothing outside itself: no script, link, import, src or external URL', () => {
  const html = renderLabHtml(LAB_REPORT_FIXTURE);
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|<object|<embed|@import|\ssrc=|\shref=/i);
  // The only URLs: the SVG namespace (a name, never fetched) and fragment references to patterns.
  const urls = [...html.matchAll(/(?:https?:)?\/\/[^\s"')<]+/g)].map((m) => m[0]);
  assert.deepEqual([...new Set(urls)], ['http://www.w3.org/2000/svg']);
  for (const m of html.matchAll(/url\(([^)]*)\)/g)) assert.match(m[1] ?? '', /^#[\w-]+$/);
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
});

void test("every figure's method is in the report, a null figure as not measured with its reason", () => {
  const html = renderLabHtml(LAB_REPORT_FIXTURE);
  const all = figures(LAB_REPORT_FIXTURE);
  assert.ok(all.length > 60, `${all.length} figures`);
  for (const f of all) assert.ok(html.includes(escapeHtml(f.method)), f.method);
  const nulls = all.filter((f) => f.value === null);
  assert.equal(nulls.length, 1);
  assert.match(
    html,
    /data-mode="per-host" data-key="cpu_ms_per_request" data-step="8" data-value="null"><span class="v na">not measured<\/span><span class="method"><span class="why">why: <\/span>the node cgroup/,
  );
  for (const m of LAB_MODES) assert.ok(html.includes(escapeHtml(LAB_REPORT_FIXTURE.modes[m].confused_deputy.detail)));
  // The findings come first.
  assert.ok(html.indexOf('id="findings"') < html.indexOf('id="machine"'));
  assert.ok(html.indexOf('id="machine"') < html.indexOf('id="overhead"'));
});

const HOSTILE = `</td></table><script>alert(1)</script><img src=x onerror="alert('x')"><a href="https://evil.example/">`;

function hostile(): LabReport {
  const json = JSON.stringify(LAB_REPORT_FIXTURE, (k, v: unknown) =>
    (k === 'method' || k === 'unit' || k === 'detail' || k === 'cpu_model' || k === 'description' || k === 'kernel') &&
    typeof v === 'string'
      ? `${v} ${HOSTILE}`
      : v,
  );
  const r = JSON.parse(json) as LabReport;
  return { ...r, version: HOSTILE, findings: [HOSTILE, `per-host & sidecar: "quoted" 'single'`] };
}

void test('hostile strings in methods, units, details, the machine and the findings stay text', () => {
  const html = renderLabHtml(hostile());
  assert.doesNotMatch(html, /<script|<img|<a |onerror="|evil\.example\/">/);
  assert.ok(html.includes(escapeHtml(HOSTILE)));
  assert.ok(html.includes('per-host &amp; sidecar: &quot;quoted&quot; &#39;single&#39;'));
  // The document's structure is the same as with the plain report: no element was injected.
  const tags = (h: string) => {
    const count = new Map<string, number>();
    for (const m of h.matchAll(/<([a-z]+)[\s>]/g)) count.set(m[1] ?? '', (count.get(m[1] ?? '') ?? 0) + 1);
    return Object.fromEntries([...count].sort());
  };
  assert.deepEqual(tags(html), tags(renderLabHtml({ ...LAB_REPORT_FIXTURE, findings: ['one', 'two'] })));
});

void test('a report with nothing measured and one step still renders every chart and table', () => {
  const none = (f: Figure): Figure => ({ ...f, value: null, method: 'the phase did not run (stopped)' });
  const blank = JSON.parse(JSON.stringify(LAB_REPORT_FIXTURE), function (this: unknown, _k, v: unknown) {
    return v !== null && typeof v === 'object' && 'method' in v ? none(v as Figure) : v;
  }) as LabReport;
  const one: LabReport = {
    ...blank,
    workload: { ...blank.workload, pods_per_node_steps: [4] },
    modes: {
      sidecar: {
        ...blank.modes.sidecar,
        overhead: blank.modes.sidecar.overhead.slice(0, 1).map((s) => ({ ...s, pods_per_node: 4 })),
      },
      'per-host': { ...blank.modes['per-host'], overhead: [] },
    },
    findings: [],
  };
  const html = renderLabHtml(one);
  assert.equal((html.match(/<svg class="chart"/g) ?? []).length, 12);
  assert.doesNotMatch(html, /NaN|Infinity|undefined/);
  assert.match(html, /The run recorded no findings/);
  assert.match(
    html,
    /data-mode="per-host" data-key="added_p50_ms" data-step="4" data-value="null"><span class="v na">not measured<\/span><span class="method">this mode has no run at this step/,
  );
});
