// Mesh TLS between proxies on two Node versions, as in a mesh halfway through moving from Node 20 to
// Node 24: OpenSSL 3.0 on one side, 3.5 on the other (whose ClientHello also offers the post-quantum
// X25519MLKEM768 key share). One proxy runs in this process, the other is `outrigger proxy` run by the
// node binary OUTRIGGER_PEER_NODE names, both ways round, over HTTP/1.1 and HTTP/2. scripts/node24.sh
// sets it (these tests on Node 24, the Node that runs npm as the peer); without it there is nothing to do.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SpiffeId } from '../src/api/identity.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { Certifier } from '../src/control/identity/certify.js';
import { addIdentityService } from '../src/control/identity/service.js';
import { LocalTokenIssuer } from '../src/control/identity/tokens.js';
import { controlLog, startTestControlPlane } from './control-plane.js';
import { pod, service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import { SETTINGS, type SettingName } from '../src/proxy/env.js';
import { closeServer, freePort, listen, metricValue, startTestProxy, waitFor } from './helpers.js';

const PEER_NODE = process.env.OUTRIGGER_PEER_NODE ?? '';
const BIN = fileURLToPath(new URL('../../bin/outrigger.js', import.meta.url)); // dist/test/ → the project
const TD = 'cluster.local';
const CLIENT_ID_HEADER = 'outrigger-client-id';
/** Service addresses only the store knows: the server proxy on this Node, and the one on the peer Node. */
const HERE_VIP = '127.0.0.60';
const PEER_VIP = '127.0.0.61';

/** "v20.20.2, OpenSSL 3.0.19" of a node binary. */
function versionOf(node: string): string {
  return execFileSync(node, ['-p', 'process.version + ", OpenSSL " + process.versions.openssl'], {
    encoding: 'utf8',
  }).trim();
}

/** A port nothing listens on now (the child binds it a moment later). */

/** The app: answers HTTP/1.1 and h2c on one port with who the proxy says the client is. */
async function startApp(t: TestContext): Promise<number> {
  const answer = (id: unknown) => JSON.stringify({ clientId: id ?? null });
  const h1 = http.createServer((req, res) => res.end(answer(req.headers[CLIENT_ID_HEADER])));
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    stream.end(answer(headers[CLIENT_ID_HEADER]));
  });
  const sockets = new Set<net.Socket>();
  const mux = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.once('readable', () => {
      const head = s.read(3) as Buffer | null;
      if (head === null) return s.destroy();
      s.unshift(head);
      (head.toString('latin1') === 'PRI' ? h2 : h1).emit('connection', s);
    });
  });
  const port = await listen(mux);
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await closeServer(mux);
  });
  return port;
}

interface PeerProxy {
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
}

/** `outrigger proxy` on the peer Node, with `settings` as flags, ready (it holds its certificate). */
async function startPeerProxy(t: TestContext, settings: Partial<Record<SettingName, string>>): Promise<PeerProxy> {
  const ports = { outbound: await freePort(), inbound: await freePort(), admin: await freePort() };
  const all: Partial<Record<SettingName, string>> = {
    outboundPort: String(ports.outbound),
    inboundPort: String(ports.inbound),
    adminPort: String(ports.admin),
    outboundAddr: '127.0.0.1',
    inboundAddr: '127.0.0.1',
    adminAddr: '127.0.0.1',
    logLevel: process.env.OUTRIGGER_TEST_LOG ?? 'warn',
    ...settings,
  };
  const args = Object.entries(all).flatMap(([k, v]) => [`--${SETTINGS[k as SettingName].flag}`, v as string]);
  // Nothing of ours: no OUTRIGGER_* variable (the addon built for this Node, settings) reaches it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OUTRIGGER_')));
  const child = spawn(PEER_NODE, [BIN, 'proxy', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.after(async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  await waitFor(
    `the peer proxy (${PEER_NODE}) ready`,
    async () => {
      if (child.exitCode !== null) throw new Error(`the peer proxy exited ${child.exitCode}:\n${output}`);
      return (await fetch(`http://127.0.0.1:${ports.admin}/ready`).catch(() => undefined))?.status === 200;
    },
    60_000,
  );
  return ports;
}

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

function h2get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': '/' });
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
  });
}

const skip =
  PEER_NODE === '' ? 'OUTRIGGER_PEER_NODE is not set (scripts/node24.sh sets it to the Node that runs npm)' : false;

void test(
  'mtls across Node versions: each side on the other Node, HTTP/1.1 and HTTP/2, the client identity known',
  { skip, timeout: 120_000 },
  async (t) => {
    const peerVersion = versionOf(PEER_NODE);
    console.log(
      `mesh TLS between Node ${process.version}, OpenSSL ${process.versions.openssl} (here) and Node ${peerVersion} (peer)`,
    );

    const ca = await MeshCa.create({ trustDomain: TD });
    const tokens = await LocalTokenIssuer.create();
    const certifier = new Certifier({ ca, reviewer: tokens.reviewer(() => true) });
    const store = new LocalStore();
    const log = controlLog();
    const cp = await startTestControlPlane({
      store,
      ca,
      log,
      services: (server) => addIdentityService(server, { certifier, log }),
    });
    t.after(() => cp.close());
    const controlAddr = cp.addr;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-mtls-peer-'));
    t.after(() => fs.rm(dir, { recursive: true, force: true }));
    const mesh = async (sa: string): Promise<Partial<Record<SettingName, string>>> => {
      const file = path.join(dir, `${sa}.token`);
      await fs.writeFile(
        file,
        await tokens.issue({ namespace: 'default', serviceAccount: sa, pod: { name: `${sa}-1`, uid: `uid-${sa}` } }),
        { mode: 0o600 },
      );
      return {
        identityAddr: controlAddr,
        identityTokenFile: file,
        identity: `spiffe://${TD}/ns/default/sa/${sa}`,
        destinationAddr: controlAddr,
        trustAnchors: ca.trustAnchorPem,
      };
    };
    const id = (sa: string) => `spiffe://${TD}/ns/default/sa/${sa}` as SpiffeId;

    // Servers: "here-srv" on this Node, "peer-srv" on the peer's, in front of the same app. Clients: this
    // Node's proxy calls the peer's server, the peer's proxy calls this Node's server. All four start at
    // once (a Node start and a certificate each).
    const app = await startApp(t);
    const [hereServer, peerServer, hereClient, peerClient] = await Promise.all([
      (async () => startTestProxy(`127.0.0.1:${app}`, await mesh('here-srv')))(),
      (async () =>
        startPeerProxy(t, {
          staticDestination: `127.0.0.1:${app}`,
          inboundAddr: '127.0.0.2',
          ...(await mesh('peer-srv')),
        }))(),
      (async () => startTestProxy(`${PEER_VIP}:80`, await mesh('here-cli')))(),
      (async () => startPeerProxy(t, { staticDestination: `${HERE_VIP}:80`, ...(await mesh('peer-cli')) }))(),
    ]);
    t.after(() => hereServer.close());
    t.after(() => hereClient.close());
    store.replace({
      services: [
        service(
          'here',
          HERE_VIP,
          [{ pod: 'default/here-srv-1', ip: '127.0.0.1', ports: { 80: hereServer.inbound.port }, ready: true }],
          { ports: [{ name: 'http', port: 80 }] },
        ),
        service(
          'peer',
          PEER_VIP,
          [{ pod: 'default/peer-srv-1', ip: '127.0.0.2', ports: { 80: peerServer.inbound }, ready: true }],
          { ports: [{ name: 'http', port: 80 }] },
        ),
      ],
      pods: [
        pod('here-srv-1', '127.0.0.1', { serviceAccount: 'here-srv' }),
        pod('peer-srv-1', '127.0.0.2', { serviceAccount: 'peer-srv' }),
      ],
    });

    for (const [what, port, clientId] of [
      [`Node ${process.version} client → Node ${peerVersion} server`, hereClient.outbound.port, id('here-cli')],
      [`Node ${peerVersion} client → Node ${process.version} server`, peerClient.outbound, id('peer-cli')],
    ] as const) {
      const r1 = await get(port);
      assert.equal(r1.status, 200, `${what}, HTTP/1.1: ${r1.body}`);
      assert.deepEqual(JSON.parse(r1.body), { clientId }, `${what}, HTTP/1.1`);
      const r2 = await h2get(port);
      assert.equal(r2.status, 200, `${what}, HTTP/2: ${r2.body}`);
      assert.deepEqual(JSON.parse(r2.body), { clientId }, `${what}, HTTP/2`);
    }
    // The requests that reached this Node's server came over mesh TLS from the peer's identity.
    assert.equal(
      await metricValue(hereServer, 'request_total', { direction: 'inbound', tls: 'true', client_id: id('peer-cli') }),
      2,
    );
    assert.equal(
      await metricValue(hereClient, 'request_total', { direction: 'outbound', tls: 'true', server_id: id('peer-srv') }),
      2,
    );
  },
);
