// The service map: workloads as boxes laid out left to right in the order traffic flows (callers to
// the left of what they call), edges as curves labelled "RPS · success · p99", coloured by success.
import { el, fmtBytes, fmtMs, fmtRate, fmtRps, rateClass, svg } from './util.js';

const NODE_W = 184;
const NODE_H = 58;
const COL_GAP = 240;
const ROW_GAP = 34;
const PAD = 30;

const COLORS = { ok: '#16a34a', warn: '#d97706', bad: '#dc2626', none: '#94a3b8', tcp: '#0284c7' };

const key = (r) => `${r.namespace}/${r.kind}/${r.name}`;

/** Columns by longest path from a caller nobody calls (cycles are cut). */
function layers(nodes, edges) {
  const out = new Map(nodes.map((n) => [key(n), []]));
  const indeg = new Map(nodes.map((n) => [key(n), 0]));
  for (const e of edges) {
    if (key(e.from) === key(e.to)) continue;
    out.get(key(e.from))?.push(key(e.to));
    indeg.set(key(e.to), (indeg.get(key(e.to)) ?? 0) + 1);
  }
  const layer = new Map(nodes.map((n) => [key(n), 0]));
  // Bellman-Ford style relaxation, bounded by the node count (a cycle stops growing there).
  for (let i = 0; i < nodes.length; i++) {
    let changed = false;
    for (const [from, tos] of out) {
      for (const to of tos) {
        const want = (layer.get(from) ?? 0) + 1;
        if (want > (layer.get(to) ?? 0) && want < nodes.length) {
          layer.set(to, want);
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  // Nodes without any traffic go in a column of their own at the right.
  const connected = new Set(edges.flatMap((e) => [key(e.from), key(e.to)]));
  const maxLayer = Math.max(0, ...[...layer.entries()].filter(([k]) => connected.has(k)).map(([, l]) => l));
  for (const n of nodes) if (!connected.has(key(n))) layer.set(key(n), connected.size > 0 ? maxLayer + 1 : 0);
  return layer;
}

export function renderMap(container, workloads, edges, onOpen) {
  const nodes = [...workloads];
  for (const e of edges)
    for (const r of [e.from, e.to])
      if (!nodes.some((n) => key(n) === key(r))) nodes.push({ ...r, meshed: 0, pods: 0, rps: 0, successRate: null });
  const layer = layers(nodes, edges);
  const cols = new Map();
  for (const n of nodes.sort((a, b) => a.name.localeCompare(b.name))) {
    const l = layer.get(key(n)) ?? 0;
    if (!cols.has(l)) cols.set(l, []);
    cols.get(l).push(n);
  }
  const maxRows = Math.max(1, ...[...cols.values()].map((c) => c.length));
  const height = PAD * 2 + maxRows * NODE_H + (maxRows - 1) * ROW_GAP + 20;
  const ncols = Math.max(1, ...[...cols.keys()].map((c) => c + 1));
  const width = PAD * 2 + ncols * NODE_W + (ncols - 1) * COL_GAP;
  const pos = new Map();
  for (const [l, col] of cols) {
    const colH = col.length * NODE_H + (col.length - 1) * ROW_GAP;
    col.forEach((n, i) =>
      pos.set(key(n), { x: PAD + l * (NODE_W + COL_GAP), y: (height - colH) / 2 + i * (NODE_H + ROW_GAP) }),
    );
  }

  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: 'img',
    'aria-label': 'service map',
  });
  const defs = svg('defs');
  for (const [name, color] of Object.entries(COLORS)) {
    defs.append(
      svg(
        'marker',
        {
          id: `arrow-${name}`,
          viewBox: '0 0 10 10',
          refX: '9',
          refY: '5',
          markerWidth: '9',
          markerHeight: '9',
          markerUnits: 'userSpaceOnUse',
          orient: 'auto-start-reverse',
        },
        svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: color }),
      ),
    );
  }
  root.append(defs);

  const maxRps = Math.max(0.001, ...edges.map((e) => e.rps));
  const labels = [];
  for (const e of edges) {
    const a = pos.get(key(e.from));
    const b = pos.get(key(e.to));
    if (!a || !b) continue;
    // Opaque TCP (no requests, only connections): its own colour and label.
    const tcpOnly = e.rps === 0 && e.tcpConnections > 0;
    const cls = tcpOnly ? 'tcp' : rateClass(e.successRate);
    const color = COLORS[cls];
    const x1 = a.x + NODE_W,
      y1 = a.y + NODE_H / 2;
    const x2 = b.x,
      y2 = b.y + NODE_H / 2;
    const back = x2 <= x1;
    const d = back
      ? `M${a.x + NODE_W / 2},${a.y + NODE_H} C${a.x + NODE_W / 2},${a.y + NODE_H + 70} ${b.x + NODE_W / 2},${b.y + NODE_H + 70} ${b.x + NODE_W / 2},${b.y + NODE_H + 2}`
      : `M${x1},${y1} C${x1 + COL_GAP / 2},${y1} ${x2 - COL_GAP / 2},${y2} ${x2 - 2},${y2}`;
    const widthPx = 1.5 + 4 * Math.sqrt(e.rps / maxRps);
    const g = svg('g', {
      class: `edge${e.estimated ? ' estimated' : ''}`,
      'data-from': key(e.from),
      'data-to': key(e.to),
    });
    g.append(
      svg('path', {
        d,
        stroke: color,
        'stroke-width': tcpOnly ? 2 : widthPx.toFixed(1),
        'marker-end': `url(#arrow-${cls})`,
        opacity: e.rps > 0 || tcpOnly ? 0.9 : 0.35,
      }),
    );
    const title = svg('title');
    title.textContent = `${e.from.name} → ${e.to.name}${e.via ? ` (via service ${e.via})` : ''}: ${fmtRps(e.rps)}, success ${fmtRate(e.successRate)}, p50 ${fmtMs(e.p50)}, p99 ${fmtMs(e.p99)}${e.retryRps > 0 ? `; the caller's proxy retried ${fmtRps(e.retryRps)}` : ''}${e.estimated ? "\nThe split between this service's workloads is estimated from their inbound traffic." : ''}`;
    g.append(title);
    root.append(g);
    // The label sits past the middle of the curve, where edges fanning out of one node have parted.
    const t = 0.62;
    const bez = (p0, p1, p2, p3) =>
      (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3;
    const lx = back ? (a.x + b.x + NODE_W) / 2 : bez(x1, x1 + COL_GAP / 2, x2 - COL_GAP / 2, x2);
    const ly = back ? Math.max(a.y, b.y) + NODE_H + 52 : bez(y1, y1, y2, y2);
    const text = tcpOnly
      ? `TCP · ${e.tcpConnections} conn${e.tcpConnections === 1 ? '' : 's'} · ${fmtBytes(e.tcpBytesPerSec)}/s`
      : `${fmtRps(e.rps)} · ${fmtRate(e.successRate)} · p99 ${fmtMs(e.p99)}`;
    labels.push({ x: lx, y: ly, text, color, g });
  }
  // Labels above every edge, so that no curve crosses a label.
  for (const l of labels) {
    const w = l.text.length * 6.0 + 12;
    const t = svg('text', { x: l.x, y: l.y + 4, 'text-anchor': 'middle' });
    t.textContent = l.text;
    const box = svg(
      'g',
      { class: 'edge' },
      svg('rect', { x: l.x - w / 2, y: l.y - 9, width: w, height: 17, rx: 4, stroke: l.color, 'stroke-width': 0.8 }),
      t,
    );
    root.append(box);
  }

  for (const n of nodes) {
    const p = pos.get(key(n));
    const cls = rateClass(n.successRate);
    const g = svg('g', {
      class: `node ${cls}${n.meshed > 0 || n.pods === 0 ? '' : ' unmeshed'}`,
      transform: `translate(${p.x},${p.y})`,
      'data-node': key(n),
      tabindex: '0',
    });
    g.append(svg('rect', { width: NODE_W, height: NODE_H, rx: 10 }));
    g.append(
      svg('rect', {
        width: 5,
        height: NODE_H - 16,
        x: 4,
        y: 8,
        rx: 2,
        style: `fill:${COLORS[cls]};stroke:none;filter:none`,
      }),
    );
    const name = svg('text', { x: 16, y: 23, class: 'name' });
    name.textContent = n.name.length > 22 ? `${n.name.slice(0, 21)}…` : n.name;
    const sub = svg('text', { x: 16, y: 43, class: 'sub' });
    const inbound =
      n.rps > 0
        ? `${fmtRps(n.rps)} · ${fmtRate(n.successRate)}`
        : n.tcpConnections > 0
          ? `TCP · ${n.tcpConnections} conn${n.tcpConnections === 1 ? '' : 's'}`
          : 'no inbound traffic';
    sub.textContent = n.pods === 0 ? 'outside the mesh' : `${n.kind === 'deploy' ? 'deploy' : 'pod'} · ${inbound}`;
    const lock = svg('g', { transform: `translate(${NODE_W - 44},10)` });
    if (n.pods > 0) {
      const badge = svg('text', { x: 17, y: 12, 'text-anchor': 'middle', class: 'badge' });
      badge.textContent = n.meshed === n.pods ? 'mTLS' : n.meshed > 0 ? 'partial' : 'plain';
      lock.append(
        svg('rect', { width: 34, height: 16, rx: 8, class: n.meshed === n.pods ? 'badge-on' : 'badge-off' }),
        badge,
      );
    }
    const title = svg('title');
    title.textContent = `${n.kind}/${n.name}: ${n.meshed}/${n.pods} pods meshed; inbound ${fmtRps(n.rps)}, success ${fmtRate(n.successRate)}, p99 ${fmtMs(n.p99)}. Click for details.`;
    g.append(name, sub, lock, title);
    if (n.pods > 0) {
      g.addEventListener('click', () => onOpen(n));
      g.addEventListener('keydown', (ev) => ev.key === 'Enter' && onOpen(n));
    }
    root.append(g);
  }
  container.replaceChildren(root);
  if (nodes.length === 0) container.replaceChildren(el('div', { class: 'empty' }, 'No workloads yet.'));
}
