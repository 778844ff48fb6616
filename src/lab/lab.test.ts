// The lab's pure parts: percentiles, the workload's placement and calls, CIDR overlap (the free-network
// check), and findings computed from the figures (they follow the figures, whichever way they go).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labFindings } from './findings.js';
import { cidrsOverlap } from './lab-mesh.js';
import { quantile } from './measure.js';
import type { Figure, LabReport, ModeResult, OverheadStep } from './types.js';
import { SINK, labManifest, labPods, ringTarget } from './workload.js';

void test('quantile: nearest rank over sorted samples; null without any', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(quantile(xs, 0.5), 50);
  assert.equal(quantile(xs, 0.99), 99);
  assert.equal(quantile([7], 0.99), 7);
  assert.equal(quantile([], 0.5), null);
});

void test('workload: pods per node on each node; calls cross to the next node, or stay with one node', () => {
  const pods = labPods(2, 3);
  assert.deepEqual(
    pods.map((p) => `${p.name}@${p.node}`),
    ['lab-n1-0@node-1', 'lab-n1-1@node-1', 'lab-n1-2@node-1', 'lab-n2-0@node-2', 'lab-n2-1@node-2', 'lab-n2-2@node-2'],
  );
  for (const p of pods) assert.notEqual(ringTarget(pods, p, 2).node, p.node);
  assert.equal(ringTarget(pods, pods[4] as (typeof pods)[0], 2).name, 'lab-n1-1');
  const one = labPods(1, 2);
  assert.equal(ringTarget(one, one[0] as (typeof one)[0], 1).name, 'lab-n1-1');
  const yaml = labManifest(pods, '/w/programs', true);
  assert.equal((yaml.match(/outrigger.io\/inject: enabled/g) ?? []).length, 6);
  assert.match(yaml, new RegExp(`name: ${SINK}[\\s\\S]*inject: disabled`));
  assert.equal((labManifest(pods, '/w', false).match(/inject: enabled/g) ?? []).length, 0);
});

void test('cidrsOverlap', () => {
  assert.equal(cidrsOverlap('10.252.0.0/22', '10.252.3.7/32'), true);
  assert.equal(cidrsOverlap('10.252.0.0/22', '10.252.4.0/24'), false);
  assert.equal(cidrsOverlap('10.0.0.0/8', '10.252.0.0/22'), true);
  assert.equal(cidrsOverlap('0.0.0.0/0', '192.168.1.0/24'), true);
});

const fig = (value: number | null, unit = 'ms'): Figure => ({ value, unit, method: 'm' });

function mode(
  mode: 'sidecar' | 'per-host',
  v: { mem: number; p99: number; blast: number; keys: number; share: number },
): ModeResult {
  const step: OverheadStep = {
    pods_per_node: 2,
    p50_ms: fig(1),
    p99_ms: fig(v.p99),
    baseline_p50_ms: fig(1),
    baseline_p99_ms: fig(1),
    added_p50_ms: fig(0),
    added_p99_ms: fig(v.p99 - 1),
    cpu_ms_per_request: fig(1),
    data_plane_private_mb_total: fig(v.mem, 'MB'),
    data_plane_private_mb_per_pod: fig(v.mem / 4, 'MB'),
    data_plane_rss_mb_total: fig(v.mem * 2, 'MB'),
    data_plane_processes: mode === 'sidecar' ? 4 : 2,
    requests: 10,
    failed_requests: 0,
  };
  return {
    mode,
    overhead: [step],
    attributed_cpu_share: fig(v.share, 'share'),
    attributed_memory_share: fig(v.share, 'share'),
    quiet_pod_p99_ms_before: fig(2),
    quiet_pod_p99_ms_during_flood: fig(null),
    blast_radius_pods: fig(v.blast, 'pods'),
    blast_radius_failed_requests: fig(v.blast * 10, 'requests'),
    blast_radius_window_ms: fig(100),
    upgrade_failed_requests: fig(3, 'requests'),
    upgrade_window_ms: fig(10),
    identities_per_process: fig(v.keys, 'identities'),
    confused_deputy: { attempted: true, refused: true, detail: '' },
  };
}

function report(s: ModeResult, p: ModeResult): Omit<LabReport, 'findings'> {
  return {
    version: '0',
    started_at: '',
    finished_at: '',
    quick: true,
    machine: { cpus: 2, cpu_model: '', memory_gb: 1, kernel: '', node: '', cgroup: 'v1' },
    workload: { nodes: 2, pods_per_node_steps: [2], rate_rps: 1, duration_s: 1, description: '' },
    modes: { sidecar: s, 'per-host': p },
  };
}

void test('findings follow the figures and name the mode each favours', () => {
  const f = labFindings(
    report(
      mode('sidecar', { mem: 80, p99: 30, blast: 1, keys: 1, share: 1 }),
      mode('per-host', { mem: 40, p99: 60, blast: 2, keys: 2, share: 0 }),
    ),
  );
  const about = (word: string) => f.find((x) => x.includes(word)) ?? '';
  assert.match(about('private memory'), /per-host 40 MB against sidecar 80 MB \(2\.0×\); favours per-host/);
  assert.match(about('Added p99'), /favours sidecar/);
  assert.match(about('Blast radius'), /favours sidecar/);
  assert.match(about('Private keys'), /favours sidecar/);
  assert.match(about('Attribution'), /100%.*0%.*favours sidecar/);
  assert.match(about('Noisy neighbour'), /not compared/);
  assert.match(about('CPU per request'), /about the same.*neither mode favoured/);
  // The other way round, the other sentence.
  const g = labFindings(
    report(
      mode('sidecar', { mem: 40, p99: 60, blast: 3, keys: 1, share: 1 }),
      mode('per-host', { mem: 80, p99: 30, blast: 2, keys: 2, share: 0 }),
    ),
  );
  assert.match(g.find((x) => x.includes('private memory')) ?? '', /favours sidecar/);
  assert.match(g.find((x) => x.includes('Added p99')) ?? '', /favours per-host/);
  assert.match(g.find((x) => x.includes('Blast radius')) ?? '', /favours per-host/);
});
