// The node proxy in one process, without namespaces: two pods added on handed-over listeners (as the
// runtime hands them), each with its own admin view; the node view lists them; one removed, its
// listeners close and the view forgets it; bad settings refuse the pod and leave the others alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createLogger } from '../../core/log.js';
import { NodeProxy, type NodeProxyView } from './node.js';
import type { ListenerRole, NodeToRuntime } from './protocol.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function listening(): Promise<net.Server> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return s;
}

void test('node proxy: pods added on handed listeners, each with its own view, and removed', async () => {
  const sent: NodeToRuntime[] = [];
  const waiters: (() => void)[] = [];
  const np = new NodeProxy({
    node: 'node-1',
    adminAddr: '127.0.0.1',
    adminPort: 0,
    log: createLogger('test', 'silent'),
    send: (m) => {
      sent.push(m);
      for (const w of waiters.splice(0)) w();
    },
  });
  const admin = await np.start();
  const next = async (type: string, pod: string) => {
    for (;;) {
      const m = sent.find((x) => x.type === type && 'pod' in x && x.pod === pod);
      if (m !== undefined) return m;
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  const ports = new Map<string, Record<ListenerRole, number>>();
  for (const pod of ['shop/web', 'shop/api']) {
    const got = {} as Record<ListenerRole, number>;
    for (const role of ['outbound', 'inbound', 'admin'] as const) {
      const s = await listening();
      got[role] = (s.address() as net.AddressInfo).port;
      np.handle({ type: 'listener', pod, role }, s);
    }
    ports.set(pod, got);
    const [ns = '', name = ''] = pod.split('/');
    np.handle(
      {
        type: 'add',
        pod,
        args: [
          '--static-destination',
          '127.0.0.1:9',
          '--pod-namespace',
          ns,
          '--pod-name',
          name,
          '--log-level',
          'silent',
        ],
      },
      undefined,
    );
    assert.deepEqual(await next('added', pod), { type: 'added', pod });
  }
  // Each pod's view answers on its own admin listener.
  for (const p of ports.values()) assert.equal((await get(p.admin, '/ready')).status, 200);
  let view = JSON.parse((await get(admin.port, '/dataplane')).body) as NodeProxyView;
  assert.deepEqual(
    view.pods.map((p) => p.pod),
    ['shop/web', 'shop/api'],
  );
  assert.deepEqual(view.identities, []); // no mTLS here: no key held
  assert.match((await get(admin.port, '/metrics')).body, /^dataplane_pods\{node="node-1"\} 2$/m);

  // Bad settings: refused with the reason, the others untouched.
  for (const role of ['outbound', 'inbound', 'admin'] as const)
    np.handle({ type: 'listener', pod: 'shop/bad', role }, await listening());
  np.handle({ type: 'add', pod: 'shop/bad', args: ['--inbound-port', 'x'] }, undefined);
  const bad = await next('added', 'shop/bad');
  assert.ok(bad.type === 'added' && /--inbound-port/.test(bad.error ?? ''), JSON.stringify(bad));
  // Listeners missing: refused.
  np.handle({ type: 'add', pod: 'shop/none', args: [] }, undefined);
  const none = await next('added', 'shop/none');
  assert.ok(none.type === 'added' && /listeners must come before/.test(none.error ?? ''), JSON.stringify(none));

  np.handle({ type: 'remove', pod: 'shop/web' }, undefined);
  await next('removed', 'shop/web');
  await assert.rejects(get(ports.get('shop/web')?.admin ?? 0, '/ready'), /ECONNREFUSED/);
  assert.equal((await get(ports.get('shop/api')?.admin ?? 0, '/ready')).status, 200);
  view = JSON.parse((await get(admin.port, '/dataplane')).body) as NodeProxyView;
  assert.deepEqual(
    view.pods.map((p) => p.pod),
    ['shop/api'],
  );
  await np.stop();
});
