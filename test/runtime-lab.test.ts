// End-to-end, as root: `outrigger lab` with the smallest settings its flags allow (2 pods on each of 2
// nodes, 1 s loads), writing JSON and HTML, checked on the facts that do not depend on timing: every
// figure present with a method; one key per sidecar and every key of its node per node proxy; a
// sidecar killed hits its own pod only, a node proxy killed every loaded pod of its node; the confused
// deputy refused, with the counter that moved; attribution 1 for sidecars and 0 per host (from which
// cgroup each process sits in); nothing of the lab left afterwards. Then a lab interrupted with Ctrl-C
// (SIGINT) while its sidecar mesh runs under load: it stops and leaves nothing either.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { networksFor } from './mesh-harness.js';
import { BIN, MESH_TOOLS, meshPreconditions, unavailable } from './root-helpers.js';
import { cgroupRoots } from '../src/runtime/supervisor/index.js';
import type { Figure, LabReport, ModeResult } from '../src/lab/types.js';

interface Ran {
  readonly code: number | null;
  readonly out: string;
}

/** Runs `outrigger lab` with the test's network; `interrupt` decides, from the output so far, when to
 *  send SIGINT. */
function lab(args: readonly string[], interrupt?: (out: string) => boolean): Promise<Ran> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, 'lab', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const onData = (c: string) => {
      out += c;
      if (!sent && interrupt?.(out) === true) {
        sent = true;
        p.kill('SIGINT');
      }
    };
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('close', (code) => resolve({ code, out }));
  });
}

/** What the lab could leave behind on the network `bridge` and in `workDir`; empty when nothing is. */
async function leftovers(bridge: string, workDir: string): Promise<string[]> {
  const out: string[] = [];
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const l of netns.split('\n')) if (l.startsWith(bridge)) out.push(`netns ${l}`);
  if (existsSync(`/sys/class/net/${bridge}`)) out.push(`link ${bridge}`);
  for (const table of ['filter', 'nat', 'mangle']) {
    const rules = spawnSync('iptables-save', ['-t', table], { encoding: 'utf8' }).stdout;
    for (const l of rules.split('\n')) if (l.includes(bridge)) out.push(`iptables ${table}: ${l}`);
  }
  const roots = await cgroupRoots();
  if (!('problem' in roots)) {
    const bases = roots.version === 2 ? [roots.base] : [...new Set(Object.values(roots.base))];
    for (const b of bases) {
      const dir = join(b, 'outrigger');
      if (!existsSync(dir)) continue;
      for (const e of readdirSync(dir)) if (e.startsWith(bridge)) out.push(`cgroup ${join(dir, e)}`);
    }
  }
  for (const pid of readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    if (cmd.includes(workDir) && Number(pid) !== process.pid) out.push(`process ${pid}: ${cmd}`);
  }
  // The harness's files and the reports the test asked for stay; nothing else may.
  const kept = new Set(['owner', 'lab.json', 'lab.html']);
  const left = existsSync(workDir) ? readdirSync(workDir).filter((e) => !kept.has(e)) : [];
  if (left.length > 0) out.push(`in ${workDir}: ${left.join(', ')}`);
  return out;
}

function checkFigure(where: string, f: Figure): void {
  assert.ok(f !== undefined && typeof f === 'object', `${where} missing`);
  assert.ok(
    f.value === null || (typeof f.value === 'number' && Number.isFinite(f.value)),
    `${where}: ${JSON.stringify(f)}`,
  );
  assert.equal(typeof f.unit, 'string', where);
  assert.ok(typeof f.method === 'string' && f.method.length > 10, `${where} has a method: ${JSON.stringify(f)}`);
}

const MODE_FIGURES = [
  'attributed_cpu_share',
  'attributed_memory_share',
  'quiet_pod_p99_ms_before',
  'quiet_pod_p99_ms_during_flood',
  'blast_radius_pods',
  'blast_radius_failed_requests',
  'blast_radius_window_ms',
  'upgrade_failed_requests',
  'upgrade_window_ms',
  'identities_per_process',
] as const;
const STEP_FIGURES = [
  'p50_ms',
  'p99_ms',
  'baseline_p50_ms',
  'baseline_p99_ms',
  'added_p50_ms',
  'added_p99_ms',
  'cpu_ms_per_request',
  'data_plane_private_mb_total',
  'data_plane_private_mb_per_pod',
  'data_plane_rss_mb_total',
] as const;

async function setUp(t: TestContext) {
  const why = meshPreconditions(MESH_TOOLS);
  if (why !== undefined) {
    unavailable(t, 'runtime-lab', 'the lab test', why, 'iproute2, iptables, util-linux, curl and python3');
    return undefined;
  }
  const { work, nets } = await networksFor(t, 'runtime-lab');
  const n = nets[0];
  assert.ok(n !== undefined);
  // The harness's own work directory: the lab's state directory is then <work>/state, the one the
  // harness takes down if a run of this file was killed before the lab could clean up.
  const workDir = work;
  const args = [
    '--pods-per-node',
    '2',
    '--nodes',
    '2',
    '--duration',
    '1',
    '--rate',
    '20',
    '--work-dir',
    workDir,
    '--bridge',
    n.bridge,
    '--pod-cidr',
    n.podCidr,
    '--service-cidr',
    n.serviceCidr,
    '--control-port',
    String(n.controlPort),
  ];
  return { work, workDir, bridge: n.bridge, args };
}

void test(
  'outrigger lab: both modes measured, the structural facts right, nothing left',
  { timeout: 600_000 },
  async (t) => {
    const s = await setUp(t);
    if (s === undefined) return;
    const json = join(s.work, 'lab.json');
    const html = join(s.work, 'lab.html');
    const r = await lab([...s.args, '--json', json, '--html', html]);
    assert.equal(r.code, 0, r.out);
    const report = JSON.parse(readFileSync(json, 'utf8')) as LabReport;
    assert.match(readFileSync(html, 'utf8'), /<html/i);

    for (const mode of ['sidecar', 'per-host'] as const) {
      const m: ModeResult = report.modes[mode];
      assert.equal(m.mode, mode);
      for (const k of MODE_FIGURES) checkFigure(`${mode}.${k}`, m[k]);
      assert.equal(m.overhead.length, 1);
      for (const st of m.overhead) {
        assert.equal(st.pods_per_node, 2);
        for (const k of STEP_FIGURES) checkFigure(`${mode}.overhead.${k}`, st[k]);
        assert.ok(st.requests > 0, `${mode}: requests`);
        assert.ok(typeof st.failed_requests === 'number');
      }
      // Sized from the machine, not timing: these are counts of what ran.
      assert.ok(m.confused_deputy.attempted, `${mode}: ${m.confused_deputy.detail}`);
      assert.equal(m.confused_deputy.refused, true, `${mode}: ${m.confused_deputy.detail}`);
    }
    const sc = report.modes.sidecar;
    const ph = report.modes['per-host'];
    assert.equal(sc.overhead[0]?.data_plane_processes, 4, 'one sidecar per meshed pod');
    assert.equal(ph.overhead[0]?.data_plane_processes, 2, 'one node proxy per node');
    assert.equal(sc.identities_per_process.value, 1);
    assert.equal(ph.identities_per_process.value, 2, 'a node proxy holds the key of each pod of its node');
    assert.equal(sc.blast_radius_pods.value, 1, sc.blast_radius_pods.method);
    assert.ok((ph.blast_radius_pods.value ?? 0) >= 2, ph.blast_radius_pods.method);
    assert.ok((sc.attributed_cpu_share.value ?? 0) >= 0.99, sc.attributed_cpu_share.method);
    assert.equal(ph.attributed_cpu_share.value, 0, ph.attributed_cpu_share.method);
    assert.ok((sc.attributed_memory_share.value ?? 0) >= 0.99, sc.attributed_memory_share.method);
    assert.equal(ph.attributed_memory_share.value, 0, ph.attributed_memory_share.method);
    // The refusal is shown with the counter that moved.
    assert.match(
      ph.confused_deputy.detail,
      /source_not_pod"\} at lab-n1-0's data plane went ([0-9]+) → (?!\1\b)[0-9]+/,
    );
    assert.ok(report.findings.length >= 5, JSON.stringify(report.findings));
    for (const f of report.findings)
      assert.match(f, /favours (sidecar|per-host)|neither mode favoured|not compared/, f);
    assert.deepEqual(await leftovers(s.bridge, s.workDir), []);
  },
);

void test(
  'outrigger lab: Ctrl-C while a mesh runs stops it and leaves nothing behind',
  { timeout: 300_000 },
  async (t) => {
    const s = await setUp(t);
    if (s === undefined) return;
    // Interrupted with the sidecar mesh up and under load: as the blast-radius phase starts its load
    // generators in every pod.
    const r = await lab(s.args, (out) => /sidecar: blast radius: started/.test(out));
    assert.equal(r.code, 130, r.out);
    assert.match(r.out, /interrupted/);
    assert.deepEqual(await leftovers(s.bridge, s.workDir), []);
  },
);
