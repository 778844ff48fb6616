// H2Metrics: a connection's figures are in the metrics while it is open and stay there after it closed,
// counted once; protocol errors by kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { H2Metrics } from './metrics-h2.js';
import { connect, RawPeer, serve } from './http2/wire/testkit.js';
import { pingFrame } from './http2/wire/frames.js';

/** The sum of `name`'s samples whose labels include `labels`. */
async function scrape(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  let sum = 0;
  for (const line of (await registry.metrics()).split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

void test('h2 metrics: streams, frames and connections of open and closed connections, counted once', async () => {
  const registry = new Registry();
  const m = new H2Metrics(registry);
  const srv = await serve();
  const { conn, h, socket } = await connect(srv.port);
  m.track(conn, 'outbound', 'server');
  m.track(srv.conns[0]!, 'outbound', 'client');
  const ex = await h.request({ ':method': 'GET', ':scheme': 'http', ':path': '/', ':authority': 'x' });
  assert.equal(ex.status, '200');
  const open = { direction: 'outbound', peer: 'server' };
  assert.equal(await scrape(registry, 'h2_streams_total', open), 1);
  assert.equal(await scrape(registry, 'h2_open_connections', open), 1);
  assert.equal(await scrape(registry, 'h2_connections_total'), 2);
  const frames = await scrape(registry, 'h2_frames_received_total', open);
  assert.ok(frames >= 3, `frames received ${frames}`); // SETTINGS, its ACK, HEADERS, DATA...
  conn.goaway();
  socket.end();
  await h.closed;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await scrape(registry, 'h2_open_connections', open), 0);
  assert.equal(await scrape(registry, 'h2_streams_total', open), 1, 'counted once after close');
  assert.equal(await scrape(registry, 'h2_frames_received_total', open), conn.stats.framesIn);
  assert.equal(await scrape(registry, 'h2_goaways_sent_total', { ...open, code: 'NO_ERROR' }), 1);
  await srv.close();
});

void test('h2 metrics: a ping flood is h2_protocol_errors_total{kind="ping_flood"}, with the GOAWAY code', async () => {
  const registry = new Registry();
  const m = new H2Metrics(registry);
  const srv = await serve({ maxControlPerSecond: 10 });
  const peer = await RawPeer.connect(srv.port);
  m.track(srv.conns[0]!, 'inbound', 'client');
  const pings: Buffer[] = [];
  for (let i = 0; i < 50; i++) pings.push(pingFrame(Buffer.alloc(8, i), false));
  peer.send(...pings);
  await peer.goAwayCode();
  const labels = { direction: 'inbound', peer: 'client' };
  assert.equal(await scrape(registry, 'h2_protocol_errors_total', { ...labels, kind: 'ping_flood' }), 1);
  await peer.closedSocket();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await scrape(registry, 'h2_protocol_errors_total', { ...labels, kind: 'ping_flood' }), 1);
  assert.equal(await scrape(registry, 'h2_goaways_sent_total', { ...labels, code: 'ENHANCE_YOUR_CALM' }), 1);
  await srv.close();
});
