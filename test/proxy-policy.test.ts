// HTTP/2 and gRPC through the inbound side's policy, in process: a real control plane (LocalStore) serves
// the pod's policy to the proxy (--pod, --policy-addr), and a real h2c app sits behind the inbound
// listener. A client outside the authorized network is refused (403; gRPC PERMISSION_DENIED in a
// trailers-only answer) while its connection goes on; a live policy change lets it in; a local rate
// limit answers 429 with Retry-After (gRPC RESOURCE_EXHAUSTED), the requests within it going through.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MeshCa } from '../src/control/identity/ca.js';
import { Certifier } from '../src/control/identity/certify.js';
import { addIdentityService } from '../src/control/identity/service.js';
import { LocalTokenIssuer } from '../src/control/identity/tokens.js';
import { controlLog, startTestControlPlane } from './control-plane.js';
import { pod } from '../src/control/store/contract.js';
import { LocalStore } from '../src/control/store/local/local.js';
import type { PolicyEntries } from '../src/control/store/store.js';
import { listen, metricValue, startTestProxy, waitFor } from './helpers.js';

interface Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: string;
}

function send(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':authority': 'web', ...headers }, { endStream: body === undefined });
    let h: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let text = '';
    s.on('response', (x) => (h = x));
    s.on('trailers', (x) => (trailers = x));
    s.setEncoding('latin1');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => resolve({ status: Number(h[':status']), headers: h, trailers, body: text }));
    s.on('error', reject);
    if (body) s.end(body);
  });
}

const grpcCall = { ':method': 'POST', ':path': '/pkg.Svc/Get', 'content-type': 'application/grpc', te: 'trailers' };

void test('HTTP/2 and gRPC through an inbound policy: refused, allowed after a live change, rate limited', async (t) => {
  // The app: h2c, answering plain requests with "app" and gRPC calls with OK in the trailers.
  const app = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  let hits = 0;
  app.on('session', (s) => {
    sessions.add(s);
    s.on('error', () => {});
  });
  app.on('stream', (s, h) => {
    s.on('error', () => {});
    hits++;
    if (h['content-type'] === 'application/grpc') {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end(Buffer.alloc(5));
      return;
    }
    s.respond({ ':status': 200 });
    s.end('app');
  });
  const appPort = await listen(app as unknown as net.Server);
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        app.close(() => resolve());
      }),
  );

  // The pod web-1 serves appPort; a Server covers it, authorized for one network only.
  const policy = (networks: string[], rateLimit?: number): PolicyEntries => ({
    servers: [
      {
        namespace: 'default',
        name: 'web-h2',
        podSelector: { matchLabels: { app: 'web' }, matchExpressions: [] },
        port: 'h2',
        proxyProtocol: 'HTTP/2',
      },
    ],
    authorizationPolicies: [
      {
        namespace: 'default',
        name: 'web-net',
        target: { kind: 'Server', name: 'web-h2' },
        authentications: [{ kind: 'NetworkAuthentication', namespace: 'default', name: 'net' }],
      },
    ],
    meshTLSAuthentications: [],
    networkAuthentications: [
      { namespace: 'default', name: 'net', networks: networks.map((cidr) => ({ cidr, except: [] })) },
    ],
    rateLimits:
      rateLimit === undefined
        ? []
        : [{ namespace: 'default', name: 'web', server: 'web-h2', total: rateLimit, overrides: [] }],
  });
  const content = {
    services: [],
    pods: [pod('web-1', '127.0.0.1', { meshed: true, ports: [{ name: 'h2', containerPort: appPort }] })],
  };
  const store = new LocalStore({ ...content, policy: policy(['10.0.0.0/8']) });
  // The policy service answers only a proxy that presents its pod's certificate: the proxy gets one
  // for web-1's identity (ServiceAccount default) from the control plane's CA.
  const ca = await MeshCa.create({ trustDomain: 'cluster.local' });
  const tokens = await LocalTokenIssuer.create();
  const certifier = new Certifier({ ca, reviewer: tokens.reviewer(() => true) });
  const log = controlLog();
  const cp = await startTestControlPlane({
    store,
    ca,
    log,
    policy: { defaultPolicy: 'deny', clusterNetworks: [] },
    services: (server) => addIdentityService(server, { certifier, log }),
  });
  t.after(() => cp.close());
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-policy-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const tokenFile = path.join(dir, 'web.token');
  const jwt = await tokens.issue({
    namespace: 'default',
    serviceAccount: 'default',
    pod: { name: 'web-1', uid: 'u-web-1' },
  });
  await fs.writeFile(tokenFile, jwt, { mode: 0o600 });
  const proxy = await startTestProxy(`127.0.0.1:${appPort}`, {
    pod: 'default/web-1',
    policyAddr: cp.addr,
    defaultInboundPolicy: 'deny',
    identityAddr: cp.addr,
    identityTokenFile: tokenFile,
    identity: 'spiffe://cluster.local/ns/default/sa/default',
    trustAnchors: ca.trustAnchorPem,
  });
  t.after(() => proxy.close());
  await waitFor('the policy', async () => (await fetch(`http://127.0.0.1:${proxy.admin.port}/ready`)).status === 200);

  const session = http2.connect(`http://127.0.0.1:${proxy.inbound.port}`);
  session.on('error', () => {});
  t.after(() => session.destroy());
  let goaway = false;
  session.on('goaway', () => (goaway = true));

  // Outside the authorized network: refused, and the connection goes on.
  const denied = await send(session, { ':path': '/x' });
  assert.equal(denied.status, 403, denied.body);
  assert.match(String(denied.headers['outrigger-proxy-error']), /not authorized|unauthorized|denied/i);
  const deniedGrpc = await send(session, grpcCall, Buffer.alloc(5));
  assert.equal(deniedGrpc.status, 200);
  assert.equal(deniedGrpc.headers['grpc-status'], '7', 'PERMISSION_DENIED, trailers-only');
  assert.equal(hits, 0, 'nothing reached the app');

  // A live change authorizes loopback: the same connection gets through.
  store.replace({ ...content, policy: policy(['127.0.0.0/8']) });
  await waitFor('the new policy', async () => (await send(session, { ':path': '/y' })).status === 200);
  const ok = await send(session, grpcCall, Buffer.alloc(5));
  assert.equal(ok.trailers['grpc-status'], '0');
  assert.ok(hits >= 2);

  // A rate limit of 5 per second: a burst of 40 streams gets 429s with Retry-After, and some through.
  store.replace({ ...content, policy: policy(['127.0.0.0/8'], 5) });
  let burst: Reply[] = [];
  await waitFor('the rate limit', async () => {
    burst = await Promise.all(Array.from({ length: 40 }, (_, i) => send(session, { ':path': `/burst/${i}` })));
    return burst.some((r) => r.status === 429);
  });
  const limited = burst.filter((r) => r.status === 429);
  assert.ok(limited.length > 0 && burst.some((r) => r.status === 200), JSON.stringify(burst.map((r) => r.status)));
  assert.ok(Number(limited[0]?.headers['retry-after']) >= 1, 'Retry-After in seconds');
  const limitedGrpc = await send(session, grpcCall, Buffer.alloc(5));
  assert.equal(limitedGrpc.headers['grpc-status'], '8', 'RESOURCE_EXHAUSTED');
  assert.equal(goaway, false, 'the client connection was never told to go away');
  assert.ok((await metricValue(proxy, 'request_errors_total', { direction: 'inbound', error: 'unauthorized' })) >= 2);
  assert.ok((await metricValue(proxy, 'request_errors_total', { direction: 'inbound', error: 'rate_limited' })) >= 1);
});
