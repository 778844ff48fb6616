// The dashboard's views: the overview (intro, mesh totals, service map, workloads, services) and a
// workload's page (its golden metrics, routes, who calls it, what it calls, pods, live tap). Data comes
// from /api/overview every few seconds; the URL hash says which view (#/ or #/workload/NS/KIND/NAME).
import { renderMap } from './map.js';
import { el, fmtCpu, fmtMem, fmtMs, fmtRate, fmtRps, ratePill, rateClass } from './util.js';

const REFRESH_MS = 3000;
const state = {
  window: Number(localStorage.getItem('outrigger.window') ?? 60) || 60,
  data: null,
  tap: null,
  introClosed: localStorage.getItem('outrigger.intro') === 'closed',
};

const $ = (id) => document.getElementById(id);
const wkey = (r) => `${r.namespace}/${r.kind}/${r.name}`;
const same = (a, b) => a.kind === b.kind && a.namespace === b.namespace && a.name === b.name;
const href = (r) => `#/workload/${encodeURIComponent(r.namespace)}/${r.kind}/${encodeURIComponent(r.name)}`;

function route() {
  const m = /^#\/workload\/([^/]+)\/(deploy|pod)\/(.+)$/.exec(location.hash);
  return m
    ? { view: 'workload', ref: { namespace: decodeURIComponent(m[1]), kind: m[2], name: decodeURIComponent(m[3]) } }
    : { view: 'overview' };
}

async function refresh() {
  try {
    const res = await fetch(`/api/overview?window=${state.window}`, { cache: 'no-store' });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
    state.data = body;
    $('problem').hidden = true;
    $('live').className = 'live on';
    $('updated').textContent = `live · ${new Date(body.observe.at).toLocaleTimeString()}`;
    render();
  } catch (err) {
    $('live').className = 'live off';
    $('updated').textContent = 'disconnected';
    $('problem').hidden = false;
    $('problem').textContent = `Cannot reach the mesh: ${err.message}. Is it still running? (outrigger get pods)`;
  }
}

function render() {
  const r = route();
  const crumbs = $('crumbs');
  crumbs.replaceChildren(
    r.view === 'workload'
      ? el('span', {}, el('a', { href: '#/' }, 'Mesh'), ' / ', `${r.ref.kind}/${r.ref.name}`)
      : el('span', {}, 'Mesh overview'),
  );
  if (!state.data) return;
  if (r.view === 'workload') renderWorkload(r.ref);
  else renderOverview();
}

// ---------------------------------------------------------------------------------------------- overview

function renderOverview() {
  const { status, observe } = state.data;
  const view = $('view');
  if (view.dataset.view !== 'overview') {
    stopTap();
    view.dataset.view = 'overview';
    view.replaceChildren(
      state.introClosed
        ? ''
        : el(
            'div',
            { class: 'intro', id: 'intro' },
            el(
              'div',
              {},
              el('h2', {}, 'Your services, as the mesh sees them'),
              el(
                'p',
                {},
                'Every pod here runs a small proxy beside the app. The proxies encrypt traffic between pods (mutual TLS, no code change), retry and balance requests, and measure every call. ',
                'Each arrow below is live traffic between two workloads, labelled with requests per second · success rate · 99th-percentile latency; red means failing. Click a workload for its routes and a live view of its requests.',
              ),
            ),
            el(
              'button',
              {
                class: 'ghost',
                onclick: () => {
                  localStorage.setItem('outrigger.intro', 'closed');
                  state.introClosed = true;
                  $('intro')?.remove();
                },
              },
              'Got it',
            ),
          ),
      el('div', { class: 'cards', id: 'cards' }),
      el(
        'section',
        { class: 'panel' },
        el(
          'h3',
          {},
          'Service map',
          el('span', { class: 'hint' }, 'callers on the left; arrows: RPS · success · p99 (measured at the caller)'),
        ),
        el('div', { id: 'map' }),
        el(
          'div',
          { class: 'legend' },
          el('span', {}, el('i', { style: 'background:#16a34a' }), '≥ 99% success'),
          el('span', {}, el('i', { style: 'background:#d97706' }), '≥ 95%'),
          el('span', {}, el('i', { style: 'background:#0284c7' }), 'opaque TCP'),
          el('span', {}, el('i', { style: 'background:#dc2626' }), 'failing'),
          el(
            'span',
            {},
            el('i', { style: 'background:repeating-linear-gradient(90deg,#64748b 0 5px,transparent 5px 8px)' }),
            "split between a service's workloads estimated",
          ),
          el('span', {}, 'dashed box: not meshed'),
        ),
      ),
      el(
        'section',
        { class: 'panel' },
        el(
          'h3',
          {},
          'Workloads',
          el('span', { class: 'hint' }, "inbound traffic, as each workload's own proxies measured it"),
        ),
        el('div', { id: 'workloads' }),
      ),
      el(
        'section',
        { class: 'panel' },
        el(
          'h3',
          {},
          'Services',
          el('span', { class: 'hint' }, 'traffic addressed to each Service, measured at its clients (after retries)'),
        ),
        el('div', { id: 'services' }),
      ),
    );
  }
  const total = observe.workloads.reduce((n, w) => n + w.rps, 0);
  const meshed = status.pods.filter((p) => p.meshed).length;
  const worst = [...observe.workloads]
    .filter((w) => w.successRate !== null)
    .sort((a, b) => a.successRate - b.successRate)[0];
  const ready = status.pods.filter((p) => p.ready).length;
  $('cards').replaceChildren(
    card('Mesh', status.phase, `${ready}/${status.pods.length} pods ready`),
    card('Meshed pods', `${meshed}/${status.pods.length}`, 'with a sidecar proxy and mTLS'),
    card('Requests', fmtRps(total), `served, over the last ${fmtWindow(observe.windowSec)}`),
    card(
      'Lowest success',
      worst ? fmtRate(worst.successRate) : '–',
      worst ? `${worst.kind}/${worst.name}` : 'no traffic yet',
      worst ? rateClass(worst.successRate) : 'none',
    ),
    card(
      'Services',
      String(status.services.length),
      `${(status.routes ?? []).length} route${(status.routes ?? []).length === 1 ? '' : 's'}`,
    ),
  );
  renderMap($('map'), observe.workloads, observe.edges, (n) => (location.hash = href(n)));
  $('workloads').replaceChildren(workloadTable(observe.workloads));
  $('services').replaceChildren(serviceTable(observe.services));
}

function fmtWindow(s) {
  return s >= 60 ? `${s / 60} min` : `${s} s`;
}

function card(k, v, s, cls) {
  return el(
    'div',
    { class: 'card' },
    el('div', { class: 'k' }, k),
    el('div', { class: `v${cls ? ` rate ${cls}` : ''}` }, v),
    el('div', { class: 's' }, s),
  );
}

const num = (text, value, field) => el('td', { class: 'num', 'data-field': field, 'data-value': value ?? '' }, text);

function workloadTable(rows) {
  if (rows.length === 0) return el('div', { class: 'empty' }, 'No workloads.');
  return el(
    'table',
    { class: 'grid', id: 'workload-table' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        ...['Workload', 'Meshed', 'Success', 'RPS', 'P50', 'P99', 'TCP', 'Proxy CPU', 'Proxy memory'].map((h, i) =>
          el('th', { class: i > 1 ? 'num' : '' }, h),
        ),
      ),
    ),
    el(
      'tbody',
      {},
      ...[...rows]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((w) =>
          el(
            'tr',
            { class: 'click', 'data-workload': wkey(w), onclick: () => (location.hash = href(w)) },
            el('td', {}, el('a', { href: href(w) }, w.name), el('span', { class: 'meshed' }, ` ${w.kind}`)),
            el('td', {}, el('span', { class: `meshed ${w.meshed === w.pods ? 'yes' : ''}` }, `${w.meshed}/${w.pods}`)),
            el(
              'td',
              { class: 'num', 'data-field': 'success', 'data-value': w.successRate ?? '' },
              ratePill(w.successRate),
            ),
            num(fmtRps(w.rps), w.rps, 'rps'),
            num(fmtMs(w.p50), w.p50, 'p50'),
            num(fmtMs(w.p99), w.p99, 'p99'),
            num(String(w.tcpConnections), w.tcpConnections, 'tcp'),
            num(fmtCpu(w.proxyCpu), w.proxyCpu, 'cpu'),
            num(fmtMem(w.proxyMemory), w.proxyMemory, 'memory'),
          ),
        ),
    ),
  );
}

function serviceTable(rows) {
  if (rows.length === 0) return el('div', { class: 'empty' }, 'No services.');
  return el(
    'table',
    { class: 'grid', id: 'service-table' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        ...['Service', 'Endpoints meshed', 'Success', 'RPS', 'Retries', 'P50', 'P99', 'TCP'].map((h, i) =>
          el('th', { class: i > 1 ? 'num' : '' }, h),
        ),
      ),
    ),
    el(
      'tbody',
      {},
      ...rows.map((s) =>
        el(
          'tr',
          { 'data-service': `${s.namespace}/${s.name}` },
          el('td', {}, s.name),
          el('td', {}, `${s.meshed}/${s.pods}`),
          el('td', { class: 'num' }, ratePill(s.successRate)),
          num(fmtRps(s.rps), s.rps, 'rps'),
          retries(s),
          num(fmtMs(s.p50), s.p50, 'p50'),
          num(fmtMs(s.p99), s.p99, 'p99'),
          num(String(s.tcpConnections), s.tcpConnections, 'tcp'),
        ),
      ),
    ),
  );
}

/** Retries the callers' proxies made: what kept a flaky backend from showing through. */
function retries(g) {
  if (!(g.retryRps > 0)) return num('–', 0, 'retries');
  return el(
    'td',
    {
      class: 'num',
      'data-field': 'retries',
      'data-value': g.retryRps,
      title: "requests the callers' proxies retried on another endpoint (route retry policy)",
    },
    `${fmtRps(g.retryRps)}`,
  );
}

// ---------------------------------------------------------------------------------------------- workload

function servicesOf(status, ref) {
  const pods = status.pods.filter(
    (p) => p.namespace === ref.namespace && (ref.kind === 'pod' ? p.name === ref.name : p.deployment === ref.name),
  );
  return status.services
    .filter(
      (s) =>
        s.namespace === ref.namespace &&
        Object.keys(s.selector).length > 0 &&
        pods.some((p) => Object.entries(s.selector).every(([k, v]) => p.labels[k] === v)),
    )
    .map((s) => s.name);
}

function renderWorkload(ref) {
  const { status, observe } = state.data;
  const view = $('view');
  const id = `workload:${wkey(ref)}`;
  if (view.dataset.view !== id) {
    stopTap();
    view.dataset.view = id;
    view.replaceChildren(
      el('div', { class: 'cards', id: 'cards' }),
      el('div', { id: 'insight-slot' }),
      el(
        'section',
        { class: 'panel' },
        el(
          'h3',
          {},
          'Routes',
          el(
            'span',
            { class: 'hint' },
            'HTTPRoutes and GRPCRoutes on its services; backends: configured weight and the share each really got',
          ),
        ),
        el('div', { id: 'routes' }),
      ),
      el(
        'div',
        { class: 'two' },
        el(
          'section',
          { class: 'panel' },
          el('h3', {}, 'Callers', el('span', { class: 'hint' }, 'measured at the caller')),
          el('div', { id: 'sources' }),
        ),
        el(
          'section',
          { class: 'panel' },
          el('h3', {}, 'Calls', el('span', { class: 'hint' }, 'services it calls, after retries')),
          el('div', { id: 'dests' }),
        ),
      ),
      el('section', { class: 'panel' }, el('h3', {}, 'Pods'), el('div', { id: 'pods' })),
      tapPanel(ref),
    );
  }
  const w = observe.workloads.find((x) => same(x, ref));
  if (!w) {
    $('cards').replaceChildren(
      el('div', { class: 'notice' }, `${ref.kind}/${ref.name} is not in the mesh (any more).`),
    );
    return;
  }
  // The story a failing replica behind retries tells: it fails, its callers hardly notice.
  const svcsNow = new Set(servicesOf(status, ref));
  const callers = observe.serviceEdges.filter((e) => e.to.namespace === ref.namespace && svcsNow.has(e.to.name));
  const retried = callers.reduce((n, e) => n + (e.retryRps ?? 0), 0);
  const callersOk = callers.filter((e) => e.rps > 0);
  const seen =
    callersOk.length > 0
      ? callersOk.reduce((n, e) => n + e.rps * (e.successRate ?? 0), 0) / callersOk.reduce((n, e) => n + e.rps, 0)
      : null;
  const insight =
    w.successRate !== null && w.successRate < 0.95 && seen !== null && seen > w.successRate + 0.02
      ? el(
          'div',
          { class: 'notice', id: 'insight', style: 'margin:0 0 18px' },
          `${ref.name} answers only ${fmtRate(w.successRate)} of its requests successfully, yet its callers see ${fmtRate(seen)}: their proxies retried ${fmtRps(retried)} of failed requests on another replica (the route's retry policy). The mesh is hiding a failure you should still fix.`,
        )
      : '';
  $('cards').replaceChildren(
    card('Success', fmtRate(w.successRate), `inbound, last ${fmtWindow(observe.windowSec)}`, rateClass(w.successRate)),
    card('Requests', fmtRps(w.rps), `${w.requests} in the window`),
    card('Latency p50 / p99', `${fmtMs(w.p50)}`, `p95 ${fmtMs(w.p95)} · p99 ${fmtMs(w.p99)}`),
    card('TCP connections', String(w.tcpConnections), 'open now, inbound'),
    card(
      'Meshed',
      `${w.meshed}/${w.pods}`,
      w.meshed === w.pods ? 'every pod has a proxy (mTLS)' : 'some pods run without a proxy',
    ),
    card('Proxies', fmtMem(w.proxyMemory), `CPU ${fmtCpu(w.proxyCpu)}`),
  );
  $('insight-slot').replaceChildren(insight);
  const svcs = svcsNow;
  const routes = observe.routes.filter(
    (r) => r.namespace === ref.namespace && (svcs.has(r.service) || r.backends.some((b) => svcs.has(b.service))),
  );
  $('routes').replaceChildren(
    routes.length === 0
      ? el('div', { class: 'empty' }, `No traffic to its services (${[...svcs].join(', ') || 'none'}) in this window.`)
      : el(
          'table',
          { class: 'grid', id: 'route-table' },
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ...['Route', 'Service', 'Success', 'RPS', 'P50', 'P99', 'Backends'].map((h, i) =>
                el('th', { class: i > 1 && i < 6 ? 'num' : '' }, h),
              ),
            ),
          ),
          el(
            'tbody',
            {},
            ...routes.map((r) =>
              el(
                'tr',
                { 'data-route': r.route },
                el('td', {}, r.route),
                el('td', {}, r.service),
                el('td', { class: 'num' }, ratePill(r.successRate)),
                num(fmtRps(r.rps), r.rps, 'rps'),
                num(fmtMs(r.p50), r.p50, 'p50'),
                num(fmtMs(r.p99), r.p99, 'p99'),
                el(
                  'td',
                  {},
                  r.backends.length === 0
                    ? '–'
                    : el(
                        'div',
                        { class: 'split' },
                        ...r.backends.flatMap((b) => [
                          el('span', {}, b.service),
                          el(
                            'span',
                            { title: `weight ${fmtRate(b.weight)}, got ${fmtRate(b.share)}` },
                            el('span', {
                              class: 'bar target',
                              style: `width:${Math.max(2, b.weight * 100)}%;display:block;margin-bottom:2px`,
                            }),
                            el('span', {
                              class: 'bar',
                              style: `width:${Math.max(2, (b.share ?? 0) * 100)}%;display:block`,
                            }),
                          ),
                          el('span', {}, `${fmtRate(b.weight)} → ${fmtRate(b.share)}`),
                        ]),
                      ),
                ),
              ),
            ),
          ),
        ),
  );
  const edgeRows = (edges, side) =>
    edges.length === 0
      ? el('div', { class: 'empty' }, 'None in this window.')
      : el(
          'table',
          { class: 'grid' },
          el(
            'thead',
            {},
            el(
              'tr',
              {},
              ...[
                side === 'from' ? 'Caller' : 'Service',
                'Success',
                'RPS',
                ...(side === 'to' ? ['Retries'] : []),
                'P99',
              ].map((h, i) => el('th', { class: i > 0 ? 'num' : '' }, h)),
            ),
          ),
          el(
            'tbody',
            {},
            ...edges
              .sort((a, b) => b.rps - a.rps)
              .map((e) =>
                el(
                  'tr',
                  {},
                  el(
                    'td',
                    {},
                    e[side].kind === 'svc'
                      ? `svc/${e[side].name}`
                      : el('a', { href: href(e[side]) }, `${e[side].kind}/${e[side].name}`),
                    e.via && side === 'from'
                      ? el('span', { class: 'meshed' }, ` via ${e.via}${e.estimated ? ' (est.)' : ''}`)
                      : '',
                  ),
                  ...(e.rps === 0 && e.tcpConnections > 0
                    ? [
                        el('td', { class: 'num' }, el('span', { class: 'pill none' }, 'TCP')),
                        num(`${e.tcpConnections} conn${e.tcpConnections === 1 ? '' : 's'}`, 0, 'rps'),
                        side === 'to' ? num('–', 0) : '',
                        num('–', null),
                      ]
                    : [
                        el('td', { class: 'num' }, ratePill(e.successRate)),
                        num(fmtRps(e.rps), e.rps, 'rps'),
                        side === 'to' ? retries(e) : '',
                        num(fmtMs(e.p99), e.p99, 'p99'),
                      ]),
                ),
              ),
          ),
        );
  $('sources').replaceChildren(
    edgeRows(
      observe.edges.filter((e) => same(e.to, ref)),
      'from',
    ),
  );
  $('dests').replaceChildren(
    edgeRows(
      observe.serviceEdges.filter((e) => same(e.from, ref)),
      'to',
    ),
  );
  const pods = observe.pods.filter(
    (p) =>
      p.namespace === ref.namespace &&
      status.pods.some(
        (s) =>
          s.name === p.name &&
          s.namespace === p.namespace &&
          (ref.kind === 'pod' ? s.name === ref.name : s.deployment === ref.name),
      ),
  );
  $('pods').replaceChildren(
    el(
      'table',
      { class: 'grid' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ...['Pod', 'IP', 'Status', 'Success', 'RPS', 'P99', 'Proxy CPU', 'Proxy memory', 'Pod CPU', 'Pod memory'].map(
            (h, i) => el('th', { class: i > 2 ? 'num' : '' }, h),
          ),
        ),
      ),
      el(
        'tbody',
        {},
        ...pods.map((p) => {
          const s = status.pods.find((x) => x.name === p.name && x.namespace === p.namespace);
          return el(
            'tr',
            {},
            el(
              'td',
              {},
              p.name,
              p.meshed ? el('span', { class: 'meshed yes' }, '') : el('span', { class: 'meshed' }, ' (not meshed)'),
            ),
            el('td', {}, s?.ip ?? ''),
            el(
              'td',
              {},
              `${s?.phase ?? ''}${s?.ready ? '' : ', not ready'}${s?.restarts ? `, ${s.restarts} restarts` : ''}`,
            ),
            el('td', { class: 'num' }, ratePill(p.successRate)),
            num(fmtRps(p.rps), p.rps),
            num(fmtMs(p.p99), p.p99),
            num(fmtCpu(p.proxyCpu), p.proxyCpu),
            num(fmtMem(p.proxyMemory), p.proxyMemory),
            // The pod's own cgroup (app and proxy together), as the runtime samples it.
            num(fmtCpu(s?.usage?.cpuCores), s?.usage?.cpuCores),
            num(
              `${fmtMem(s?.usage?.memoryBytes)}${s?.usage?.memoryLimit !== undefined ? ` / ${fmtMem(s.usage.memoryLimit)}` : ''}`,
              s?.usage?.memoryBytes,
            ),
          );
        }),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- live tap

function tapPanel(ref) {
  const path = el('input', { placeholder: 'path prefix, e.g. /api', id: 'tap-path' });
  const method = el('input', {
    placeholder: 'method, e.g. GET',
    id: 'tap-method',
    style: 'min-width:90px;width:110px',
  });
  const start = el('button', { id: 'tap-start' }, 'Start live tap');
  const stop = el('button', { class: 'ghost', id: 'tap-stop', disabled: true }, 'Stop');
  const out = el(
    'div',
    { id: 'tap-out' },
    el(
      'div',
      { class: 'empty' },
      "Tap shows each request this workload's proxies handle, as it finishes: who called, what, the answer and how long it took.",
    ),
  );
  start.addEventListener('click', () => {
    stopTap();
    const q = new URLSearchParams({
      namespace: ref.namespace,
      [ref.kind === 'deploy' ? 'deploy' : 'pod']: ref.name,
      max: '1000',
    });
    if (path.value) q.set('path', path.value);
    if (method.value) q.set('method', method.value.toUpperCase());
    const body = el('tbody');
    const tableEl = el(
      'div',
      { class: 'tap-table' },
      el(
        'table',
        { class: 'grid' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...['Time', 'Dir', 'From', 'To', 'Request', 'Status', 'Latency', 'TLS'].map((h) => el('th', {}, h)),
          ),
        ),
        body,
      ),
    );
    const status = el('div', { class: 'empty', id: 'tap-status' }, 'Connecting…');
    out.replaceChildren(status, tableEl);
    const es = new EventSource(`/api/tap?${q}`);
    state.tap = es;
    start.disabled = true;
    stop.disabled = false;
    let n = 0;
    const end = (message, cls) => {
      es.close();
      if (state.tap === es) state.tap = null;
      start.disabled = false;
      stop.disabled = true;
      if (message) status.replaceWith(el('div', { class: cls ?? 'notice', id: 'tap-status' }, message));
    };
    es.addEventListener('open', () => (status.textContent = 'Tapping… (requests appear as they finish)'));
    es.addEventListener('unavailable', (ev) => {
      tableEl.remove();
      end(JSON.parse(ev.data).message);
    });
    es.addEventListener('error', (ev) => {
      if (ev.data) status.textContent = JSON.parse(ev.data).message;
      else end(n === 0 ? 'The tap stream ended.' : `The tap stream ended after ${n} requests.`, 'empty');
    });
    es.addEventListener('request', (ev) => {
      const r = JSON.parse(ev.data);
      n++;
      const ok = r.status > 0 && r.status < 500 && (r.grpc_status === undefined || r.grpc_status === 0);
      body.prepend(
        el(
          'tr',
          {},
          el('td', {}, new Date(r.ts).toLocaleTimeString()),
          el('td', {}, r.direction === 'inbound' ? 'in' : 'out'),
          el('td', {}, r.client_id ? r.client_id.replace(/^spiffe:\/\/[^/]+\//, '') : r.src),
          el('td', {}, r.dst),
          el('td', {}, `${r.method} ${r.authority ?? ''}${r.path}`),
          el(
            'td',
            {},
            el(
              'span',
              { class: `pill ${ok ? 'ok' : 'bad'}` },
              `${r.status}${r.grpc_status !== undefined ? ` / grpc ${r.grpc_status}` : ''}`,
            ),
          ),
          el('td', {}, fmtMs(r.latency_ms)),
          el('td', {}, r.tls === true || r.tls === 'true' ? 'mTLS' : '–'),
        ),
      );
      while (body.children.length > 200) body.lastChild.remove();
    });
  });
  stop.addEventListener('click', () => {
    stopTap();
    start.disabled = false;
    stop.disabled = true;
  });
  return el(
    'section',
    { class: 'panel', id: 'tap' },
    el('h3', {}, 'Live tap', el('span', { class: 'hint' }, 'requests as they happen')),
    el('div', { class: 'tap-controls' }, path, method, start, stop),
    out,
  );
}

function stopTap() {
  if (state.tap) {
    state.tap.close();
    state.tap = null;
  }
}

// ---------------------------------------------------------------------------------------------- start

$('window').value = String(state.window);
$('window').addEventListener('change', (ev) => {
  state.window = Number(ev.target.value);
  localStorage.setItem('outrigger.window', String(state.window));
  void refresh();
});
window.addEventListener('hashchange', () => render());
void refresh();
setInterval(() => void refresh(), REFRESH_MS);
