import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startDashboard } from './server.js';

function get(url: string, host?: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: host !== undefined ? { host } : {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
  });
}

void test('the dashboard serves its page and files, refuses other hosts, and says when the mesh does not answer', async (t) => {
  const d = await startDashboard({ stateDir: '/nonexistent-outrigger-state', port: 0 });
  t.after(() => d.close());
  assert.match(d.url, /^http:\/\/127\.0\.0\.1:[0-9]+\/$/);
  const page = await get(d.url);
  assert.equal(page.status, 200);
  assert.match(page.type, /text\/html/);
  assert.match(page.body, /<script type="module" src="\/app.js">/);
  for (const f of ['app.js', 'map.js', 'util.js', 'style.css', 'favicon.svg'])
    assert.equal((await get(`${d.url}${f}`)).status, 200, f);
  assert.equal((await get(`${d.url}../package.json`)).status, 404);
  assert.equal((await get(`${d.url}api/overview?window=0`)).status, 400);
  const down = await get(`${d.url}api/overview`);
  assert.equal(down.status, 503);
  assert.match(down.body, /the mesh does not answer/);
  // DNS rebinding: a page served as evil.example that resolves to 127.0.0.1 gets nothing.
  assert.equal((await get(`${d.url}api/overview`, 'evil.example:80')).status, 403);
  const tap = await get(`${d.url}api/tap?deploy=web`);
  assert.match(tap.type, /text\/event-stream/);
  assert.match(tap.body, /event: error\ndata: .*the mesh does not answer/);
});
