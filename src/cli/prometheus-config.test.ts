import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { prometheusConfig, proxyTargets } from './prometheus-config.js';
import { formatTapLine, tapTargets } from './tap.js';
import type { MeshStatus, PodView } from '../runtime/mesh.js';

const pod = (name: string, ip: string, extra: Partial<PodView> = {}): PodView =>
  ({
    namespace: 'default',
    name,
    phase: 'Running',
    ready: true,
    restarts: 0,
    meshed: true,
    ip,
    containers: [],
    labels: {},
    appContainers: ['app'],
    ...extra,
  }) as PodView;

const status: MeshStatus = {
  phase: 'Ready',
  progress: [],
  services: [],
  deployments: [],
  pods: [
    pod('web-b', '10.244.0.3', { deployment: 'web' }),
    pod('web-a', '10.244.0.2', { deployment: 'web' }),
    pod('legacy', '10.244.0.4', { meshed: false }),
    pod('web-old', '10.244.0.5', { deployment: 'web', terminating: true }),
    pod('solo', '10.244.0.6'),
  ],
};

void test('prometheus-config: every meshed proxy that is not being removed, labelled, sorted', () => {
  assert.deepEqual(proxyTargets(status), [
    {
      targets: ['10.244.0.2:4191'],
      labels: { namespace: 'default', pod: 'web-a', deployment: 'web', workload: 'web' },
    },
    {
      targets: ['10.244.0.3:4191'],
      labels: { namespace: 'default', pod: 'web-b', deployment: 'web', workload: 'web' },
    },
    { targets: ['10.244.0.6:4191'], labels: { namespace: 'default', pod: 'solo', workload: 'solo' } },
  ]);
  const cfg = parse(prometheusConfig({ interval: '2s', targets: proxyTargets(status) })) as {
    global: { scrape_interval: string };
    scrape_configs: { job_name: string; static_configs: unknown[] }[];
  };
  assert.equal(cfg.global.scrape_interval, '2s');
  assert.equal(cfg.scrape_configs[0]?.job_name, 'outrigger-proxy');
  assert.equal(cfg.scrape_configs[0]?.static_configs.length, 3);
  const sd = parse(prometheusConfig({ interval: '5s', fileSd: '/tmp/targets.json' })) as {
    scrape_configs: { file_sd_configs: { files: string[] }[] }[];
  };
  assert.deepEqual(sd.scrape_configs[0]?.file_sd_configs[0]?.files, ['/tmp/targets.json']);
});

void test('tap targets: one pod, or every meshed pod of a Deployment (not those being removed)', () => {
  assert.deepEqual(
    (tapTargets(status, 'default', 'deploy/web') as PodView[]).map((p) => p.name),
    ['web-b', 'web-a'],
  );
  assert.deepEqual(
    (tapTargets(status, 'default', 'solo') as PodView[]).map((p) => p.name),
    ['solo'],
  );
  assert.match(tapTargets(status, 'default', 'legacy') as string, /not meshed/);
  assert.match(tapTargets(status, 'default', 'deploy/nope') as string, /no deployment default\/nope/);
  assert.match(tapTargets(status, 'shop', 'solo') as string, /no pod shop\/solo/);
});

void test('a tap line says who called whom, what, and how it went', () => {
  const line = formatTapLine('web-a', {
    ts: '2026-01-01T10:00:00.123Z',
    direction: 'inbound',
    src: '10.244.0.9:40000',
    dst: '127.0.0.1:8080',
    tls: true,
    client_id: 'spiffe://cluster.local/ns/default/sa/client',
    server_id: 'spiffe://cluster.local/ns/default/sa/web',
    method: 'GET',
    authority: 'web',
    path: '/x',
    status: 200,
    latency_ms: 1.5,
    route: 'default',
    dst_workload: 'web',
  });
  assert.equal(
    line,
    '10:00:00.123 web-a in  10.244.0.9:40000 -> 127.0.0.1:8080 GET web/x 200 1.5ms route=default dst=web tls spiffe://cluster.local/ns/default/sa/client',
  );
});
