// Mesh TLS end to end with real parts and no root: a real control plane (destination and identity
// services) on loopback, a client proxy whose destination is a Service the store maps to a server
// proxy's inbound listener, and the server proxy in front of a real app. A relay between the two
// proxies records every byte, so that the tests can check that nothing crosses in clear.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import grpc from '@grpc/grpc-js';
import type { SpiffeId } from '../src/api/identity.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { Certifier } from '../src/control/identity/certify.js';
import { addIdentityService } from '../src/control/identity/service.js';
import { LocalTokenIssuer } from '../src/control/identity/tokens.js';
import { controlLog, startTestControlPlane } from './control-plane.js';
import { pod, service } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import type { PodEntry, ServiceEntry } from '../src/control/store/store.js';
import { ProxyIdentity } from '../src/proxy/identity/identity.js';
import { MESH_ALPN } from '../src/proxy/tls/alpn.js';
import { connectMeshTls } from '../src/proxy/tls/client.js';
import { HYBRID_GROUP, MESH_GROUPS, groupSupported } from '../src/proxy/tls/groups.js';
import { closeServer, listen, metricValue, startTestProxy, type TestProxy, waitFor } from './helpers.js';

const TD = 'cluster.local';
const WEB_ID = `spiffe://${TD}/ns/default/sa/web` as SpiffeId;
const API_ID = `spiffe://${TD}/ns/default/sa/api` as SpiffeId;
const DB_ID = `spiffe://${TD}/ns/default/sa/db` as SpiffeId;
const CLIENT_ID_HEADER = 'outrigger-client-id';
/** Service addresses only the store knows (nothing listens there; the client proxy's static destination). */
const API_VIP = '127.0.0.50';
const IMPOSTOR_VIP = '127.0.0.51';
const OPAQUE_VIP = '127.0.0.52';

// ---- the app: one port speaking HTTP/1, h2c (gRPC included), its own TLS and an echo protocol --------

interface App {
  readonly port: number;
  /** The app's own TLS certificate (PEM) and the CA that signed it. */
  readonly tlsCa: string;
  readonly tlsSerial: string;
}

/** What the app answers to HTTP: the method, url and headers it saw. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

async function startApp(t: TestContext, ca: MeshCa): Promise<App> {
  const h1 = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body, marker: 'RESPONSE-MARKER-h1' }),
      );
    });
  });
  h1.keepAliveTimeout = 60_000;
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      if (String(headers['content-type']).startsWith('application/grpc')) {
        // A gRPC unary echo: the request message back, framed the same way, then grpc-status 0.
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat(chunks));
        return;
      }
      const { ':method': method, ':path': url, ...rest } = headers;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(
        JSON.stringify({
          method,
          url,
          headers: rest,
          body: Buffer.concat(chunks).toString(),
          marker: 'RESPONSE-MARKER-h2',
        }),
      );
    });
  });
  // The app's own TLS, with a certificate that is not a proxy's (the test checks that its client sees it).
  const appTls = await selfSignedForApp(ca);
  const tlsServer = tls.createServer({ key: appTls.keyPem, cert: appTls.certPem, ALPNProtocols: ['http/1.1'] }, (s) => {
    s.on('error', () => {});
    s.on('data', (d: Buffer) => s.write(`tls-echo:${d.toString()}`));
  });
  const sockets = new Set<net.Socket>();
  const mux = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 6) return;
      s.off('data', onData);
      s.pause();
      s.unshift(buf);
      const head = buf.toString('latin1', 0, 6);
      if (buf[0] === 0x16) tlsServer.emit('connection', s);
      else if (head.startsWith('PRI ')) h2.emit('connection', s);
      else if (head.startsWith('OPAQUE')) {
        s.resume();
        s.on('data', (x: Buffer) => s.write(`echo:${x.toString()}`));
        s.on('end', () => s.end());
      } else {
        h1.emit('connection', s);
        s.resume(); // the HTTP/1 server does not resume a socket paused by its caller
      }
    };
    s.on('data', onData);
  });
  const port = await listen(mux);
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await closeServer(mux);
  });
  return { port, tlsCa: ca.trustAnchorPem, tlsSerial: appTls.serial };
}

/** A key and certificate for the app's own TLS, signed by the mesh CA (any CA would do; its client
 *  trusts it directly and does not check names). */
async function selfSignedForApp(ca: MeshCa): Promise<{ keyPem: string; certPem: string; serial: string }> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const leaf = await ca.signLeaf({
    publicKey: keys.publicKey,
    identity: `spiffe://${TD}/ns/default/sa/app-own-tls` as SpiffeId,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { keyPem, certPem: leaf.pem + ca.issuerPem, serial: leaf.serial };
}

// ---- a relay that records the bytes between the proxies ---------------------------------------------

interface Relay {
  readonly port: number;
  /** Every byte that went through, both ways. */
  bytes(): Buffer;
}

async function startRelay(t: TestContext, host: string, to: number): Promise<Relay> {
  const seen: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((a) => {
    const b = net.connect(to, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        a.destroy();
        b.destroy();
      });
    }
    a.on('data', (d: Buffer) => (seen.push(d), b.write(d)));
    b.on('data', (d: Buffer) => (seen.push(d), a.write(d)));
    a.on('end', () => b.end());
    b.on('end', () => a.end());
  });
  const port = await listen(server, host);
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await closeServer(server);
  });
  return { port, bytes: () => Buffer.concat(seen) };
}

// ---- the mesh ----------------------------------------------------------------------------------------

interface Mesh {
  readonly app: App;
  readonly client: TestProxy;
  readonly server: TestProxy;
  readonly relay: Relay;
  readonly controlAddr: string;
  readonly ca: MeshCa;
  readonly tokenFile: (sa: string) => Promise<string>;
  /** Starts a proxy with the given identity (its token file is made here). */
  readonly proxy: (
    sa: string,
    destination: string,
    settings?: Parameters<typeof startTestProxy>[1],
  ) => Promise<TestProxy>;
  readonly setStore: (services: ServiceEntry[], pods: PodEntry[]) => void;
}

async function startMesh(t: TestContext, opts: { leafLifetimeSeconds?: number } = {}): Promise<Mesh> {
  const ca = await MeshCa.create({ trustDomain: TD });
  const tokens = await LocalTokenIssuer.create();
  const certifier = new Certifier({
    ca,
    reviewer: tokens.reviewer(() => true),
    ...(opts.leafLifetimeSeconds ? { leafLifetimeSeconds: opts.leafLifetimeSeconds } : {}),
  });
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
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-mtls-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const tokenFile = async (sa: string) => {
    const file = path.join(dir, `${sa}.token`);
    await fs.writeFile(
      file,
      await tokens.issue({ namespace: 'default', serviceAccount: sa, pod: { name: `${sa}-1`, uid: `uid-${sa}` } }),
      { mode: 0o600 },
    );
    return file;
  };
  const proxy = async (sa: string, destination: string, settings: Parameters<typeof startTestProxy>[1] = {}) => {
    const p = await startTestProxy(destination, {
      identityAddr: controlAddr,
      identityTokenFile: await tokenFile(sa),
      identity: `spiffe://${TD}/ns/default/sa/${sa}`,
      destinationAddr: controlAddr,
      trustAnchors: ca.trustAnchorPem,
      ...settings,
    });
    t.after(() => p.close());
    return p;
  };
  const setStore = (services: ServiceEntry[], pods: PodEntry[]) => void store.replace({ services, pods });

  const app = await startApp(t, ca);
  const server = await proxy('api', `127.0.0.1:${app.port}`);
  const relay = await startRelay(t, '127.0.0.1', server.inbound.port);
  setStore(
    [
      service('api', API_VIP, [{ pod: 'default/api-1', ip: '127.0.0.1', ports: { 80: relay.port }, ready: true }], {
        ports: [{ name: 'http', port: 80 }],
      }),
    ],
    [pod('api-1', '127.0.0.1', { serviceAccount: 'api' }), pod('web-1', '127.0.0.9', { serviceAccount: 'web' })],
  );
  const client = await proxy('web', `${API_VIP}:80`);
  await waitFor('both proxies ready', async () => (await ready(client)) && (await ready(server)));
  return { app, client, server, relay, controlAddr, ca, tokenFile, proxy, setStore };
}

async function ready(p: TestProxy): Promise<boolean> {
  return (await fetch(`http://127.0.0.1:${p.admin.port}/ready`)).status === 200;
}

/** An HTTP/1.1 request through a proxy's outbound listener, with keep-alive off unless `agent`. */
function get(
  p: TestProxy,
  pathname: string,
  headers: http.OutgoingHttpHeaders = {},
  agent?: http.Agent,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: p.outbound.port, path: pathname, headers, agent: agent ?? false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function h2get(
  port: number,
  pathname: string,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': pathname, ...headers });
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
    req.end();
  });
}

/** Sends `data` on a new connection and resolves with what comes back once `expect` bytes arrived. */
function exchange(port: number, data: string, expect: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (got.length >= expect) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.write(data);
  });
}

function assertNotInClear(relay: Relay, markers: string[]): void {
  const bytes = relay.bytes();
  assert.ok(bytes.length > 0, 'traffic went through the relay');
  assert.equal(bytes[0], 0x16, 'the first byte between the proxies is a TLS handshake record');
  const text = bytes.toString('latin1');
  for (const m of markers) assert.ok(!text.includes(m), `"${m}" crossed between the proxies in clear`);
}

// ---- the tests ----------------------------------------------------------------------------------------

void test('mtls: HTTP/1, HTTP/2, gRPC and opaque TCP cross the proxy pair encrypted, and the server learns who the client is', async (t) => {
  const m = await startMesh(t);

  // HTTP/1: a forged identity header is replaced by the one mesh TLS proved.
  const r1 = await get(m.client, '/REQUEST-MARKER-h1', { [CLIENT_ID_HEADER]: 'spiffe://evil/ns/x/sa/y' });
  assert.equal(r1.status, 200, r1.body);
  const seen1 = JSON.parse(r1.body) as Seen;
  assert.equal(seen1.url, '/REQUEST-MARKER-h1');
  assert.equal(seen1.headers[CLIENT_ID_HEADER], WEB_ID);

  // A body larger than every buffer on the way, on a new mesh TLS connection.
  const big = 'B'.repeat(1 << 20);
  const posted = await new Promise<Seen>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: m.client.outbound.port, path: '/upload', method: 'POST', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as Seen));
      },
    );
    req.on('error', reject);
    req.end(big);
  });
  assert.equal(posted.body.length, big.length);

  // HTTP/2 (h2c prior knowledge from the app).
  const r2 = await h2get(m.client.outbound.port, '/REQUEST-MARKER-h2', { [CLIENT_ID_HEADER]: 'forged' });
  assert.equal(r2.status, 200, r2.body);
  const seen2 = JSON.parse(r2.body) as Seen;
  assert.equal(seen2.url, '/REQUEST-MARKER-h2');
  assert.equal(seen2.headers[CLIENT_ID_HEADER], WEB_ID);

  // gRPC with a real gRPC client: a unary call echoed back.
  const grpcClient = new grpc.Client(`127.0.0.1:${m.client.outbound.port}`, grpc.credentials.createInsecure());
  t.after(() => grpcClient.close());
  const reply = await new Promise<Buffer>((resolve, reject) =>
    grpcClient.makeUnaryRequest(
      '/echo.Echo/Say',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from('GRPC-MARKER-call'),
      (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res)),
    ),
  );
  assert.equal(reply.toString(), 'GRPC-MARKER-call');

  // Opaque TCP.
  const echoed = await exchange(m.client.outbound.port, 'OPAQUE-MARKER-tcp\n', 'echo:OPAQUE-MARKER-tcp\n'.length);
  assert.equal(echoed, 'echo:OPAQUE-MARKER-tcp\n');

  assertNotInClear(m.relay, ['REQUEST-MARKER', 'RESPONSE-MARKER', 'GRPC-MARKER', 'OPAQUE-MARKER', CLIENT_ID_HEADER]);

  // Metrics: the client labels its requests with the server it verified, the server with the client.
  assert.ok(
    (await metricValue(m.client, 'request_total', { direction: 'outbound', tls: 'true', server_id: API_ID })) >= 3,
  );
  assert.ok(
    (await metricValue(m.server, 'request_total', { direction: 'inbound', tls: 'true', client_id: WEB_ID })) >= 3,
  );
  assert.ok(
    (await metricValue(m.server, 'response_total', {
      direction: 'inbound',
      tls: 'true',
      client_id: WEB_ID,
      status_code: '200',
    })) >= 3,
  );
  assert.ok(
    (await metricValue(m.client, 'tcp_open_total', { direction: 'outbound', tls: 'true', server_id: API_ID })) >= 1,
    'the opaque connection',
  );
  assert.ok(
    (await metricValue(m.server, 'tcp_open_total', { direction: 'inbound', tls: 'true', client_id: WEB_ID })) >= 3,
  );
  assert.equal(await metricValue(m.client, 'tls_handshake_errors_total'), 0);
  assert.equal(await metricValue(m.server, 'tls_handshake_errors_total'), 0);
  for (const p of [m.client, m.server]) {
    assert.ok((await metricValue(p, 'identity_cert_refresh_count')) >= 1);
    assert.ok((await metricValue(p, 'identity_cert_expiration_timestamp_seconds')) > Date.now() / 1000);
  }
});

void test('mtls: a server proxy that is not the identity discovery named is refused, with a clear 502, and counted', async (t) => {
  const m = await startMesh(t);
  // A second address for the same server proxy, whose pod the store says runs as "db".
  const relay2 = await startRelay(t, '127.0.0.2', m.server.inbound.port);
  const relay1 = m.relay;
  m.setStore(
    [
      service('api', API_VIP, [{ pod: 'default/api-1', ip: '127.0.0.1', ports: { 80: relay1.port }, ready: true }], {
        ports: [{ name: 'http', port: 80 }],
      }),
      service(
        'impostor',
        IMPOSTOR_VIP,
        [{ pod: 'default/db-1', ip: '127.0.0.2', ports: { 80: relay2.port }, ready: true }],
        { ports: [{ name: 'http', port: 80 }] },
      ),
    ],
    [pod('api-1', '127.0.0.1', { serviceAccount: 'api' }), pod('db-1', '127.0.0.2', { serviceAccount: 'db' })],
  );
  const client = await m.proxy('web', `${IMPOSTOR_VIP}:80`);
  await waitFor('ready', () => ready(client));

  const r = await get(client, '/secret-REQUEST-MARKER');
  assert.equal(r.status, 502, r.body);
  assert.match(
    r.body,
    new RegExp(`server presented ${API_ID.replace(/[/.]/g, '\\$&')}, expected ${DB_ID.replace(/[/.]/g, '\\$&')}`),
  );
  assert.match(String(r.headers['outrigger-proxy-error']), /mesh tls/);
  const h2 = await h2get(client.outbound.port, '/h2');
  assert.equal(h2.status, 502, h2.body);
  assert.match(h2.body, /expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/db/);
  // Opaque: the client is reset, nothing echoed.
  assert.equal(await exchange(client.outbound.port, 'OPAQUE-MARKER-x\n', 1).catch(() => ''), '');
  assert.ok(
    (await metricValue(client, 'tls_handshake_errors_total', { direction: 'outbound', reason: 'peer_identity' })) >= 3,
  );
  assert.ok((await metricValue(client, 'response_total', { status_code: '502', tls: 'true', server_id: DB_ID })) >= 2);
  assert.ok(!relay2.bytes().toString('latin1').includes('REQUEST-MARKER'), 'no request byte reached the wrong server');
});

void test('mtls: new connections between the proxies resume TLS sessions, the client still known; off, none does', async (t) => {
  const m = await startMesh(t);
  // No pooling: every request is a new mesh TLS connection (as the bench's mtls-handshake load).
  const fresh = await m.proxy('web', `${API_VIP}:80`, { maxIdlePerUpstream: '0' });
  const off = await m.proxy('web', `${API_VIP}:80`, { maxIdlePerUpstream: '0', meshTlsSessionResumption: 'false' });
  await waitFor('ready', async () => (await ready(fresh)) && (await ready(off)));
  const requests = async (p: TestProxy) => {
    for (let i = 0; i < 4; i++) {
      const r = await get(p, `/resume/${i}`, { [CLIENT_ID_HEADER]: 'forged' });
      assert.equal(r.status, 200, r.body);
      assert.equal((JSON.parse(r.body) as Seen).headers[CLIENT_ID_HEADER], WEB_ID);
    }
  };
  const inboundResumed = () => metricValue(m.server, 'tls_handshakes_total', { direction: 'inbound', resumed: 'true' });
  await requests(fresh);
  const resumed = await metricValue(fresh, 'tls_handshakes_total', { direction: 'outbound', resumed: 'true' });
  // The first connection is a full handshake; every later one resumes with the ticket it brought.
  assert.equal(resumed, 3);
  assert.equal(
    resumed + (await metricValue(fresh, 'tls_handshakes_total', { direction: 'outbound', resumed: 'false' })),
    4,
    'one handshake per request',
  );
  assert.equal(await inboundResumed(), resumed);
  await requests(off);
  assert.equal(await metricValue(off, 'tls_handshakes_total', { direction: 'outbound', resumed: 'false' }), 4);
  assert.equal(await metricValue(off, 'tls_handshakes_total', { direction: 'outbound', resumed: 'true' }), 0);
  assert.equal(await inboundResumed(), resumed);
  assertNotInClear(m.relay, ['/resume/', CLIENT_ID_HEADER]);
});

void test('mtls: the proxies agree on X25519MLKEM768 when the runtime has it (Node 24), else X25519 (Node 20)', async (t) => {
  const m = await startMesh(t);
  const expected = groupSupported(HYBRID_GROUP) ? HYBRID_GROUP : 'X25519';
  // OpenSSL 3.5 (Node 24) has the hybrid; 3.0 (Node 20) has not.
  assert.equal(groupSupported(HYBRID_GROUP), Number(process.versions.node.split('.')[0]) >= 24);
  const r = await get(m.client, '/pq');
  assert.equal(r.status, 200, r.body);
  assert.equal(
    await metricValue(m.client, 'tls_handshakes_total', { direction: 'outbound', group: expected }),
    await metricValue(m.client, 'tls_handshakes_total', { direction: 'outbound' }),
    `every outbound handshake agreed on ${expected}`,
  );
  assert.ok((await metricValue(m.client, 'tls_handshakes_total', { direction: 'outbound' })) >= 1);
  // The server side cannot tell the group (Node exposes it on the client side only).
  assert.ok((await metricValue(m.server, 'tls_handshakes_total', { direction: 'inbound', group: 'unknown' })) >= 1);
  const v = (await (await fetch(`http://127.0.0.1:${m.client.admin.port}/identity`)).json()) as {
    keyExchange: { offered: string[]; lastNegotiated?: string };
  };
  assert.deepEqual(v.keyExchange, { offered: MESH_GROUPS, lastNegotiated: expected });
});

void test("mtls: the inbound side passes the app's own TLS through untouched, and still takes plaintext", async (t) => {
  const m = await startMesh(t);
  // Straight to the server proxy's inbound port (an unmeshed client) and through the client proxy.
  for (const port of [m.server.inbound.port, m.client.outbound.port]) {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: m.app.tlsCa,
      ALPNProtocols: ['http/1.1'],
      checkServerIdentity: () => undefined,
    });
    t.after(() => s.destroy());
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    assert.equal(
      s.getPeerX509Certificate()?.serialNumber.toLowerCase(),
      m.app.tlsSerial.toLowerCase(),
      "the app's own certificate",
    );
    const echoed = await new Promise<string>((resolve) => {
      s.once('data', (d: Buffer) => resolve(d.toString()));
      s.write('hello');
    });
    assert.equal(echoed, 'tls-echo:hello');
    s.destroy();
  }

  // Plaintext from an unmeshed client: served, without any identity header (a forged one is removed).
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: m.server.inbound.port,
        path: '/plain',
        headers: { [CLIENT_ID_HEADER]: WEB_ID },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(r.status, 200, r.body);
  assert.equal((JSON.parse(r.body) as Seen).headers[CLIENT_ID_HEADER], undefined);
  assert.ok(
    (await metricValue(m.server, 'request_total', { direction: 'inbound', tls: 'no_identity', client_id: '' })) >= 1,
  );
  const h2 = await h2get(m.server.inbound.port, '/plain-h2', { [CLIENT_ID_HEADER]: WEB_ID });
  assert.equal((JSON.parse(h2.body) as Seen).headers[CLIENT_ID_HEADER], undefined);
});

void test('mtls: on an opaque port the inbound side still terminates mesh TLS, and passes plaintext', async (t) => {
  const m = await startMesh(t);
  const opaqueServer = await m.proxy('api', `127.0.0.1:${m.app.port}`, { opaquePorts: String(m.app.port) });
  const relay = await startRelay(t, '127.0.0.3', opaqueServer.inbound.port);
  m.setStore(
    [
      service(
        'api-opaque',
        OPAQUE_VIP,
        [{ pod: 'default/api-2', ip: '127.0.0.3', ports: { 80: relay.port }, ready: true }],
        { ports: [{ port: 80, opaque: true }] },
      ),
    ],
    [pod('api-2', '127.0.0.3', { serviceAccount: 'api' })],
  );
  const client = await m.proxy('web', `${OPAQUE_VIP}:80`);
  await waitFor('ready', async () => (await ready(client)) && (await ready(opaqueServer)));
  assert.equal(
    await exchange(client.outbound.port, 'OPAQUE-MARKER-a\n', 'echo:OPAQUE-MARKER-a\n'.length),
    'echo:OPAQUE-MARKER-a\n',
  );
  assertNotInClear(relay, ['OPAQUE-MARKER']);
  assert.ok(
    (await metricValue(opaqueServer, 'tcp_open_total', { direction: 'inbound', tls: 'true', client_id: WEB_ID })) >= 1,
  );
  // Plaintext straight to the inbound port.
  assert.equal(
    await exchange(opaqueServer.inbound.port, 'OPAQUE-plain\n', 'echo:OPAQUE-plain\n'.length),
    'echo:OPAQUE-plain\n',
  );

  // A mesh TLS client with its own identity from the same control plane (a real ProxyIdentity).
  const id = ProxyIdentity.start({
    controlAddr: m.controlAddr,
    tls: {
      trustAnchors: m.ca.trustAnchorPem,
      serverIdentity: `spiffe://${TD}/ns/outrigger/sa/outrigger-control-plane`,
    },
    tokenPath: await m.tokenFile('web'),
    identity: WEB_ID,
  });
  t.after(() => id.close());
  await id.whenReady();
  const s = await connectMeshTls({
    identity: id,
    serverId: API_ID,
    alpn: MESH_ALPN.opaque,
    host: '127.0.0.1',
    port: opaqueServer.inbound.port,
  });
  t.after(() => s.destroy());
  const echoed = await new Promise<string>((resolve) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.write('OPAQUE-direct\n');
  });
  assert.equal(echoed, 'echo:OPAQUE-direct\n');
});

void test('mtls: not ready before the first certificate; /identity shows it (never the key)', async (t) => {
  const m = await startMesh(t);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-mtls-late-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const tokenPath = path.join(dir, 'token');
  // The token is not there yet: the proxy listens but cannot get a certificate.
  const p = await startTestProxy('127.0.0.1:9', {
    identityAddr: m.controlAddr,
    identityTokenFile: tokenPath,
    identity: WEB_ID,
    trustAnchors: m.ca.trustAnchorPem,
  });
  t.after(() => p.close());
  const admin = `http://127.0.0.1:${p.admin.port}`;
  assert.equal((await fetch(`${admin}/ready`)).status, 503);
  const none = await fetch(`${admin}/identity`);
  assert.equal(none.status, 503);
  assert.match(await none.text(), /no certificate yet/);
  assert.equal(await metricValue(p, 'identity_cert_refresh_count'), 0);
  assert.equal(await metricValue(p, 'identity_cert_expiration_timestamp_seconds'), 0);

  await fs.copyFile(await m.tokenFile('web'), tokenPath);
  await waitFor('ready', () => ready(p));
  const res = await fetch(`${admin}/identity`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.ok(!/PRIVATE|BEGIN/.test(text), 'no key and no PEM in the answer');
  const v = JSON.parse(text) as {
    identity: string;
    issuer: string;
    notBefore: string;
    notAfter: string;
    serial: string;
    keyExchange: { offered: string[]; lastNegotiated?: string };
  };
  assert.deepEqual(Object.keys(v).sort(), ['identity', 'issuer', 'keyExchange', 'notAfter', 'notBefore', 'serial']);
  assert.deepEqual(v.keyExchange, { offered: MESH_GROUPS }, 'the groups offered; none agreed yet');
  assert.equal(v.identity, WEB_ID);
  assert.match(v.issuer, /outrigger issuer/);
  assert.ok(Date.parse(v.notAfter) > Date.now() && Date.parse(v.notBefore) < Date.now());
  assert.match(v.serial, /^[0-9a-f]+$/);
  assert.equal(
    await metricValue(p, 'identity_cert_expiration_timestamp_seconds'),
    Math.floor(Date.parse(v.notAfter) / 1000),
  );
  assert.ok((await metricValue(p, 'identity_cert_refresh_failures_total')) >= 1);

  // A proxy without identity has no /identity.
  const plain = await startTestProxy('127.0.0.1:9');
  t.after(() => plain.close());
  assert.equal((await fetch(`http://127.0.0.1:${plain.admin.port}/identity`)).status, 404);
});

void test('mtls: certificates of a few seconds rotate under continuous traffic with zero failed requests', async (t) => {
  const m = await startMesh(t, { leafLifetimeSeconds: 3 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const failures: string[] = [];
  let ok = 0;
  const before = await metricValue(m.server, 'identity_cert_refresh_count');
  const deadline = Date.now() + 12_000;
  const worker = async (i: number) => {
    for (let n = 0; Date.now() < deadline; n++) {
      try {
        // Some requests on kept-alive connections, some on new ones (new TLS handshakes after rotations).
        const r =
          n % 2 === 0
            ? await get(m.client, `/rotate/${i}/${n}`, {}, agent)
            : await h2get(m.client.outbound.port, `/rotate-h2/${i}/${n}`);
        if (r.status === 200) ok++;
        else failures.push(`${r.status} ${r.body}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  await Promise.all([0, 1, 2].map(worker));
  assert.deepEqual(failures, []);
  assert.ok(ok > 20, `${ok} requests`);
  for (const p of [m.client, m.server]) {
    const n = await metricValue(p, 'identity_cert_refresh_count');
    assert.ok(n >= 3, `refreshes: ${n}`);
  }
  assert.ok((await metricValue(m.server, 'identity_cert_refresh_count')) > before);
  assert.equal(await metricValue(m.client, 'tls_handshake_errors_total'), 0);
});

void test('mtls settings: all three or none, each checked', async () => {
  const { loadProxyConfig } = await import('../src/proxy/config.js');
  assert.throws(
    () => loadProxyConfig({ identityAddr: '127.0.0.1:8086' }, {}),
    /mTLS needs --identity-addr, --identity-token-file and --identity together .*--identity-addr \(OUTRIGGER_PROXY_IDENTITY_ADDR\) given, --identity-token-file \(OUTRIGGER_PROXY_IDENTITY_TOKEN_FILE\), --identity \(OUTRIGGER_PROXY_IDENTITY\) missing/,
  );
  assert.throws(
    () => loadProxyConfig({ identityAddr: 'nope', identityTokenFile: '/t', identity: 'spiffe://x/y' }, {}),
    (err: Error) => {
      assert.match(err.message, /--identity-addr .*HOST:PORT/);
      assert.match(
        err.message,
        /--identity \(OUTRIGGER_PROXY_IDENTITY\): must be spiffe:\/\/<trust-domain>\/ns\/<namespace>\/sa\/<serviceaccount>, got "spiffe:\/\/x\/y"/,
      );
      return true;
    },
  );
  const cfg = loadProxyConfig(
    {},
    {
      OUTRIGGER_PROXY_IDENTITY_ADDR: '10.0.0.1:8086',
      OUTRIGGER_PROXY_IDENTITY_TOKEN_FILE: '/var/run/token',
      OUTRIGGER_PROXY_IDENTITY: WEB_ID,
      OUTRIGGER_PROXY_TRUST_ANCHORS: (await MeshCa.generatePems(TD)).trustAnchorPem,
    },
  );
  assert.equal(cfg.identity, WEB_ID);
  assert.equal(cfg.identityTokenFile, '/var/run/token');
  assert.deepEqual(cfg.identityAddr, { host: '10.0.0.1', port: 8086 });
  const none = loadProxyConfig({}, {});
  assert.equal(none.identity, undefined);
});
