// MeshTls, both sides, over real loopback sockets with certificates from a real CA (the control
// plane's, as a fixture only): TLS session resumption between proxies, and what keeps it safe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from '../../control/identity/ca.js';
import { x509 } from '../../control/identity/x509.js';
import { createLogger } from '../../core/log.js';
import { Codes, type ProxyError } from '../errors/errors.js';
import { newKeyAndCsr } from '../identity/csr.js';
import { identityCert, type IdentityCert } from '../identity/identity.js';
import { parseTrustBundle } from '../identity/bundle.js';
import { ProxyMetrics } from '../metrics.js';
import { MESH_ALPN, MESH_ALPN_LIST, type MeshAlpn } from '../tls/alpn.js';
import type { IdentitySource, MeshTlsConnection } from '../tls/server.js';
import { MeshTls, meshUpstreamError } from './mtls.js';

const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/api' as SpiffeId;
const OTHER_ID = 'spiffe://cluster.local/ns/default/sa/db' as SpiffeId;
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;

type After = { after(fn: () => unknown): void };

async function certFor(ca: MeshCa, identity: SpiffeId): Promise<IdentityCert> {
  const { keyPem, csrPem } = newKeyAndCsr(identity);
  const now = Date.now();
  const leaf = await ca.signLeaf({
    publicKey: new x509.Pkcs10CertificateRequest(csrPem).publicKey,
    identity,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
  });
  return identityCert(
    { identity, keyPem, leafPem: leaf.pem, chainPem: ca.issuerPem },
    parseTrustBundle(ca.trustAnchorPem),
  );
}

/** An identity whose certificate the test sets; `rotate` behaves like a renewal. */
class TestIdentity implements IdentitySource {
  #cert: IdentityCert;
  readonly #fns = new Set<(c: IdentityCert) => void>();
  constructor(c: IdentityCert) {
    this.#cert = c;
  }
  current(): IdentityCert {
    return this.#cert;
  }
  onRotate(fn: (c: IdentityCert) => void): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }
  rotate(c: IdentityCert): void {
    this.#cert = c;
    for (const fn of this.#fns) fn(c);
  }
}

const log = createLogger('test-mtls', 'silent');

function meshTls(t: After, identity: IdentitySource, sessionResumption?: boolean) {
  const metrics = new ProxyMetrics({ tls: true });
  const m = new MeshTls({
    identity,
    metrics,
    log,
    handshakeTimeoutMs: 5000,
    ...(sessionResumption !== undefined ? { sessionResumption } : {}),
  });
  t.after(() => m.close());
  /** tls_handshakes_total of a direction, resumed or not. */
  const handshakes = async (direction: 'inbound' | 'outbound', resumed: boolean): Promise<number> =>
    (await metrics.tlsHandshakes?.get())?.values.find(
      (v) => v.labels.direction === direction && v.labels.resumed === String(resumed),
    )?.value ?? 0;
  return { mtls: m, handshakes };
}

/** A server proxy's inbound side: mesh TLS terminated by MeshTls, "pong:<data>" echoed. */
async function startServer(t: After, identity: IdentitySource, sessionResumption?: boolean) {
  const { mtls, handshakes } = meshTls(t, identity, sessionResumption);
  const accepted: MeshTlsConnection[] = [];
  const server = net.createServer((raw) => {
    void mtls.terminate(raw, Buffer.alloc(0)).then((c) => {
      if (c === undefined) return;
      accepted.push(c);
      c.socket.on('error', () => undefined);
      c.socket.on('data', (d: Buffer) => c.socket.write(`pong:${d.toString()}`));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const c of accepted) c.socket.destroy();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return { port, label: `127.0.0.1:${port}`, accepted, handshakes };
}

/** Originates mesh TLS to `port`; resolves once verified and one exchange is done (the server's tickets
 *  arrive before its first data), or rejects with the proxy error the socket's error maps to. */
async function call(
  t: After,
  mtls: MeshTls,
  port: number,
  label: string,
  serverId = SERVER_ID,
  alpn: MeshAlpn = MESH_ALPN.h2,
): Promise<tls.TLSSocket> {
  const socket = mtls.originate(net.connect({ host: '127.0.0.1', port }), label, serverId, alpn);
  t.after(() => socket.destroy());
  try {
    await once(socket, 'secureConnect');
    const reply = once(socket, 'data');
    socket.write('ping');
    assert.equal(String((await reply)[0]), 'pong:ping');
  } catch (err) {
    throw meshUpstreamError(err) ?? err;
  }
  return socket;
}

async function setup(t: After, opts: { client?: boolean; server?: boolean } = {}) {
  const ca = await MeshCa.create();
  const server = await startServer(t, new TestIdentity(await certFor(ca, SERVER_ID)), opts.server);
  const clientIdentity = new TestIdentity(await certFor(ca, CLIENT_ID));
  const client = meshTls(t, clientIdentity, opts.client);
  return { ca, server, clientIdentity, client };
}

void test('the next connection to the same server resumes, and the server still knows the client exactly', async (t) => {
  const { server, clientIdentity, client } = await setup(t);
  const full = await call(t, client.mtls, server.port, server.label);
  assert.equal(full.isSessionReused(), false);
  const again = await call(t, client.mtls, server.port, server.label);
  assert.equal(again.isSessionReused(), true, 'the client resumed');
  const [first, second] = server.accepted;
  assert.equal(first?.resumed, false);
  assert.equal(second?.socket.isSessionReused(), true, 'the server resumed');
  assert.equal(second?.clientId, CLIENT_ID);
  assert.equal(second?.socket.getPeerX509Certificate()?.serialNumber, clientIdentity.current().serial.toUpperCase());
  assert.equal(await client.handshakes('outbound', true), 1);
  assert.equal(await client.handshakes('outbound', false), 1);
  assert.equal(await server.handshakes('inbound', true), 1);
  assert.equal(await server.handshakes('inbound', false), 1);
});

void test('a ticket is not offered to a connection that expects another identity: the identity check still runs', async (t) => {
  const { server, client } = await setup(t);
  await call(t, client.mtls, server.port, server.label);
  // The same address, another expected identity: a full handshake, and the server is refused.
  await assert.rejects(call(t, client.mtls, server.port, server.label, OTHER_ID), (e: ProxyError) => {
    assert.equal(e.code, Codes.UPSTREAM_IDENTITY);
    assert.match(
      e.message,
      /server presented spiffe:\/\/cluster\.local\/ns\/default\/sa\/api, expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/db/,
    );
    return true;
  });
  assert.equal(await client.handshakes('outbound', true), 0);
  // The ticket is still there for the identity it came from.
  assert.equal((await call(t, client.mtls, server.port, server.label)).isSessionReused(), true);
});

void test('after our certificate rotates, tickets of the old one are not offered', async (t) => {
  const { ca, server, clientIdentity, client } = await setup(t);
  // Rotated while the first connection is still being made: it keeps the old certificate, and its
  // tickets arrive after the rotation (so only the key keeps them from the new certificate).
  const first = call(t, client.mtls, server.port, server.label);
  const old = clientIdentity.current();
  clientIdentity.rotate(await certFor(ca, CLIENT_ID));
  await first;
  assert.equal(server.accepted[0]?.socket.getPeerX509Certificate()?.serialNumber, old.serial.toUpperCase());
  const fresh = await call(t, client.mtls, server.port, server.label);
  assert.equal(fresh.isSessionReused(), false, 'no ticket of the old certificate was offered');
  const serial = clientIdentity.current().serial.toUpperCase();
  assert.equal(server.accepted[1]?.socket.getPeerX509Certificate()?.serialNumber, serial);
  assert.equal((await call(t, client.mtls, server.port, server.label)).isSessionReused(), true);
  assert.equal(
    server.accepted[2]?.socket.getPeerX509Certificate()?.serialNumber,
    serial,
    'resumed with the new certificate',
  );
});

void test('with session resumption off on either side, nothing resumes', async (t) => {
  for (const off of [{ client: false }, { server: false }]) {
    const { server, client } = await setup(t, off);
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await call(t, client.mtls, server.port, server.label)).isSessionReused(),
        false,
        JSON.stringify(off),
      );
    assert.equal(await client.handshakes('outbound', false), 3);
    assert.equal(await server.handshakes('inbound', false), 3);
  }
});

void test("a resumption where the server agrees to no ALPN is refused before 'secureConnect', HTTP/2 included", async (t) => {
  // Two servers that share ticket keys and the certificate (as one server that changed its ALPN list
  // would): the first agrees to ours, the second to none. Our own servers never change their list.
  const ca = await MeshCa.create();
  const cert = await certFor(ca, SERVER_ID);
  const ticketKeys = randomBytes(48);
  const ports: number[] = [];
  for (const alpn of [MESH_ALPN_LIST, undefined]) {
    const server = tls.createServer({
      key: cert.keyPem,
      cert: cert.leafPem + cert.chainPem,
      ca: cert.trustAnchorPem,
      minVersion: 'TLSv1.3',
      requestCert: true,
      ticketKeys,
      ...(alpn !== undefined ? { ALPNProtocols: [...alpn] } : {}),
    });
    server.on('secureConnection', (s: tls.TLSSocket) => {
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => s.write(`pong:${d.toString()}`));
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    ports.push((server.address() as AddressInfo).port);
  }
  const [withAlpn = 0, without = 0] = ports;
  const label = 'api-endpoint:4143';
  const client = meshTls(t, new TestIdentity(await certFor(ca, CLIENT_ID)));
  await call(t, client.mtls, withAlpn, label); // two tickets
  // (The client refuses before it sends its Finished: the server never sees the handshake complete.)
  await assert.rejects(call(t, client.mtls, without, label), (e: ProxyError) => {
    assert.equal(e.code, Codes.UPSTREAM_TLS);
    assert.match(e.message, /resumed session: server did not agree to outrigger\/h2/);
    return true;
  });

  // HTTP/2 waits for 'secureConnect' to set up its session: it must never get it for such a socket.
  const session = http2.connect(`http://${label}`, {
    createConnection: () =>
      client.mtls.originate(net.connect({ host: '127.0.0.1', port: without }), label, SERVER_ID, MESH_ALPN.h2),
  });
  t.after(() => session.destroy());
  const [err] = (await once(session, 'error')) as [Error];
  assert.match(
    meshUpstreamError(err)?.message ?? err.message,
    /resumed session: server did not agree to outrigger\/h2/,
  );
  assert.equal(await client.handshakes('outbound', true), 0);
});
