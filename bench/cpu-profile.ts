// Sums a V8 CPU profile (`node --cpu-prof`) by self time: where a proxy's busy time goes, per function and
// per file, as shares of the time it was not idle. To profile the bench's proxies (they must exit within
// the bench's 5 s stop for Node to write the profile, hence the short drain):
//
//   OUTRIGGER_PROXY_DRAIN_TIMEOUT_MS=500 \
//   OUTRIGGER_BENCH_PROXY_NODE_OPTIONS="--max-semi-space-size=2 --cpu-prof --cpu-prof-dir=/tmp/prof" \
//     npm run bench -- --scenario mtls --paths outrigger --duration 10 --rounds 1
//   node dist/bench/cpu-profile.js /tmp/prof/*.cpuprofile
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Wall time the profile covers (ms). */
  totalMs: number;
  /** Of which not idle (ms). */
  busyMs: number;
  /** Self time per function and per file, as a share of busy time, largest first. */
  functions: [string, number][];
  files: [string, number][];
}

/** Where a frame lives, shortened: src/proxy/..., node:..., (native) for V8 and C++. */
function fileOf(url: string): string {
  if (url === '') return '(native)';
  return url
    .replace(/^.*\/dist\/(src|bench)\//, '$1/')
    .replace(/^.*\/node_modules\//, '')
    .replace(/^node:internal\//, 'node:');
}

export function summarize(p: Profile, top = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    totalUs += dt;
  });
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)?.callFrame;
    if (cf === undefined) continue;
    if (cf.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const file = fileOf(cf.url);
    const name = `${cf.functionName || '(anonymous)'} ${file}${cf.url === '' ? '' : `:${cf.lineNumber + 1}`}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const shares = (m: Map<string, number>): [string, number][] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [k, busyUs > 0 ? us / busyUs : 0]);
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, functions: shares(functions), files: shares(files) };
}

function format(name: string, s: ProfileSummary): string {
  const pct = (x: number) => `${(100 * x).toFixed(1).padStart(5)}%`;
  return [
    `${name}: ${s.totalMs.toFixed(0)} ms profiled, busy ${s.busyMs.toFixed(0)} ms (${((100 * s.busyMs) / Math.max(s.totalMs, 1)).toFixed(1)}%); shares of busy time, self:`,
    ...s.functions.map(([k, v]) => `  ${pct(v)}  ${k}`),
    '  by file:',
    ...s.files.slice(0, 12).map(([k, v]) => `  ${pct(v)}  ${k}`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node dist/bench/cpu-profile.js FILE.cpuprofile...\n');
    process.exit(2);
  }
  for (const f of files)
    process.stdout.write(`${format(f, summarize(JSON.parse(readFileSync(f, 'utf8')) as Profile))}\n\n`);
}
