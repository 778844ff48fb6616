// Mesh TLS over real loopback sockets, with certificates from a real CA (the control plane's, used
// here as a fixture only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../test/basics.js';
import crypto from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from '../../control/identity/ca.js';
import { x509 } from '../../control/identity/x509.js';
import { newKeyAndCsr } from '../identity/csr.js';
import { identityCert, type IdentityCert } from '../identity/identity.js';
import { parseTrustBundle } from '../identity/bundle.js';
import { MESH_ALPN } from './alpn.js';
import { classifyClientHello } from './clienthello.js';
import { checkMeshServerIdentity, connectMeshTls } from './client.js';
import { MeshTlsError, TlsCodes } from './errors.js';
import { MeshTlsServer, type IdentitySource, type MeshTlsConnection } from './server.js';

const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/api' as SpiffeId;
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;

async function certFor(
  ca: MeshCa,
  identity: SpiffeId,
  opts: { expired?: boolean; san?: string; lifetimeMs?: number } = {},
): Promise<IdentityCert> {
  const { keyPem, csrPem } = newKeyAndCsr(identity);
  const now = Date.now();
  const leaf = await ca.signLeaf({
    publicKey: new x509.Pkcs10CertificateRequest(csrPem).publicKey,
    identity: (opts.san ?? identity) as SpiffeId,
    notBefore: new Date(now - (opts.expired ? 7200_000 : 60_000)),
    notAfter: new Date(now + (opts.expired ? -3600_000 : (opts.lifetimeMs ?? 3600_000))),
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

/** A loopback listener that reads the ClientHello first (like the inbound's detection), then hands
 *  the socket and the bytes it read to the mesh TLS server; echoes "pong:<data>" on success. */
async function startInbound(
  t: { after(fn: () => unknown): void },
  identity: IdentitySource,
  opts: { sessionResumption?: boolean } = {},
) {
  const mesh = new MeshTlsServer({ identity, handshakeTimeoutMs: 5000, ...opts });
  const accepted: MeshTlsConnection[] = [];
  const refused: MeshTlsError[] = [];
  const kinds: string[] = [];
  const server = net.createServer((raw) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const kind = classifyClientHello(buf);
      if (kind === undefined) return;
      raw.off('data', onData);
      raw.pause();
      kinds.push(kind);
      mesh.accept(raw, buf).then(
        (c) => {
          accepted.push(c);
          c.socket.on('data', (m: Buffer) => c.socket.write(`pong:${m.toString()}`));
          c.socket.on('error', () => undefined);
        },
        (e: MeshTlsError) => refused.push(e),
      );
    };
    raw.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    mesh.close();
    for (const c of accepted) c.socket.destroy();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, accepted, refused, kinds, mesh };
}

function exchange(socket: tls.TLSSocket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d.toString()));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed')));
    socket.write(msg);
  });
}

async function setup(t: { after(fn: () => unknown): void }, opts: { sessionResumption?: boolean } = {}) {
  const ca = await MeshCa.create();
  const other = await MeshCa.create();
  const serverIdentity = new TestIdentity(await certFor(ca, SERVER_ID));
  const inbound = await startInbound(t, serverIdentity, opts);
  return { ca, other, serverIdentity, inbound };
}

/** A mesh client made with tls.connect itself, offering `session` when given (the proxy's own client
 *  and its ticket cache are tested in ../transport/mtls.test.ts). Resolves after one exchange, with the
 *  tickets the server sent (they arrive before its first data). */
async function ticketClient(t: { after(fn: () => unknown): void }, port: number, cert: IdentityCert, session?: Buffer) {
  const tickets: Buffer[] = [];
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    secureContext: cert.secureContext,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [MESH_ALPN.h2],
    checkServerIdentity: checkMeshServerIdentity(SERVER_ID),
    ...(session !== undefined ? { session } : {}),
  });
  t.after(() => socket.destroy());
  socket.on('session', (s: Buffer) => tickets.push(s));
  await once(socket, 'secureConnect');
  const reply = await exchange(socket, 'ping');
  return { socket, reply, resumed: socket.isSessionReused(), tickets };
}

void test('the right identities connect: the server learns the client identity, both agree on ALPN', async (t) => {
  const { ca, inbound } = await setup(t);
  const client = new TestIdentity(await certFor(ca, CLIENT_ID));
  const s = await connectMeshTls({
    identity: client,
    serverId: SERVER_ID,
    alpn: MESH_ALPN.h2,
    host: '127.0.0.1',
    port: inbound.port,
  });
  t.after(() => s.destroy());
  assert.equal(s.getProtocol(), 'TLSv1.3');
  assert.equal(s.alpnProtocol, MESH_ALPN.h2);
  assert.equal(await exchange(s, 'ping'), 'pong:ping');
  assert.equal(inbound.accepted[0]?.clientId, CLIENT_ID);
  assert.equal(inbound.accepted[0]?.alpn, MESH_ALPN.h2);
  assert.deepEqual(inbound.kinds, ['mesh']);
});

void test('the client refuses a server with the wrong identity, another trust anchor, or an expired certificate', async (t) => {
  const { ca, other, serverIdentity, inbound } = await setup(t);
  const client = new TestIdentity(await certFor(ca, CLIENT_ID));
  const connect = () =>
    connectMeshTls({
      identity: client,
      serverId: SERVER_ID,
      alpn: MESH_ALPN.http1,
      host: '127.0.0.1',
      port: inbound.port,
    });

  // Another workload of the same mesh: its chain verifies, but it is not who we asked for.
  serverIdentity.rotate(await certFor(ca, 'spiffe://cluster.local/ns/default/sa/db' as SpiffeId));
  await assert.rejects(connect(), (e: MeshTlsError) => {
    assert.equal(e.code, TlsCodes.PEER_IDENTITY);
    assert.equal(
      e.message,
      'mesh tls: server presented spiffe://cluster.local/ns/default/sa/db, expected spiffe://cluster.local/ns/default/sa/api',
    );
    return true;
  });
  serverIdentity.rotate(await certFor(other, SERVER_ID));
  await assert.rejects(
    connect(),
    (e: MeshTlsError) =>
      e.code === TlsCodes.HANDSHAKE && /unable to get local issuer|UNABLE_TO_GET_ISSUER_CERT/i.test(e.message),
  );
  serverIdentity.rotate(await certFor(ca, SERVER_ID, { expired: true }));
  await assert.rejects(
    connect(),
    (e: MeshTlsError) => e.code === TlsCodes.HANDSHAKE && e.reason === 'CERT_HAS_EXPIRED',
  );
  // And the right one again.
  serverIdentity.rotate(await certFor(ca, SERVER_ID));
  const s = await connect();
  s.destroy();
});

void test('the server refuses a client from another trust anchor, expired, or without a mesh identity', async (t) => {
  const { ca, other, inbound } = await setup(t);
  const attempt = async (cert: IdentityCert): Promise<void> => {
    // The client trusts our anchor (so it would talk to the server) but presents `cert`.
    const client = new TestIdentity(identityCert(cert, parseTrustBundle(ca.trustAnchorPem)));
    const before = inbound.refused.length;
    // In TLS 1.3 the client may finish its side before the server has judged its certificate; the
    // server's verdict then arrives as an alert on the first read.
    const s = await connectMeshTls({
      identity: client,
      serverId: SERVER_ID,
      alpn: MESH_ALPN.opaque,
      host: '127.0.0.1',
      port: inbound.port,
    }).catch(() => undefined);
    if (s) await assert.rejects(exchange(s, 'ping'));
    await waitFor('the server refusal', () => inbound.refused.length > before);
  };
  await attempt(await certFor(other, CLIENT_ID));
  assert.equal(inbound.refused.at(-1)?.code, TlsCodes.HANDSHAKE);
  assert.match(inbound.refused.at(-1)?.message ?? '', /handshake failed/);
  await attempt(await certFor(ca, CLIENT_ID, { expired: true }));
  assert.equal(inbound.refused.at(-1)?.reason, 'CERT_HAS_EXPIRED');
  await attempt(await certFor(ca, CLIENT_ID, { san: 'spiffe://other.domain/ns/default/sa/web' }));
  assert.equal(inbound.refused.at(-1)?.code, TlsCodes.PEER_IDENTITY);
  assert.match(
    inbound.refused.at(-1)?.message ?? '',
    /client certificate has no identity of trust domain cluster\.local/,
  );
  assert.equal(inbound.accepted.length, 0);
});

void test('a rotation changes the certificate of new connections and leaves open ones alone', async (t) => {
  const { ca, serverIdentity, inbound } = await setup(t);
  const client = new TestIdentity(await certFor(ca, CLIENT_ID));
  const connect = () =>
    connectMeshTls({
      identity: client,
      serverId: SERVER_ID,
      alpn: MESH_ALPN.h2,
      host: '127.0.0.1',
      port: inbound.port,
    });
  const a = await connect();
  t.after(() => a.destroy());
  // Each side's own certificate on a connection (the peer certificate of a TLS 1.3 client socket may
  // read as empty once session tickets arrived, so identities are taken at handshake time).
  const clientSerialA = a.getX509Certificate()?.serialNumber;
  assert.equal(clientSerialA, client.current().serial.toUpperCase());
  await waitFor('a accepted', () => inbound.accepted.length === 1);
  const serverSerialA = inbound.accepted[0]?.socket.getX509Certificate()?.serialNumber;
  assert.equal(serverSerialA, serverIdentity.current().serial.toUpperCase());

  serverIdentity.rotate(await certFor(ca, SERVER_ID));
  client.rotate(await certFor(ca, CLIENT_ID));
  const b = await connect();
  t.after(() => b.destroy());
  assert.equal(b.getX509Certificate()?.serialNumber, client.current().serial.toUpperCase());
  await waitFor('b accepted', () => inbound.accepted.length === 2);
  assert.equal(
    inbound.accepted[1]?.socket.getX509Certificate()?.serialNumber,
    serverIdentity.current().serial.toUpperCase(),
  );
  assert.notEqual(clientSerialA, b.getX509Certificate()?.serialNumber);
  assert.equal(await exchange(a, 'old'), 'pong:old', 'the connection opened before the rotation still works');
  assert.equal(await exchange(b, 'new'), 'pong:new');
  assert.equal(inbound.accepted[0]?.socket.getX509Certificate()?.serialNumber, serverSerialA);
});

void test('a client resumes with a ticket, and the server still knows it by the certificate of the session', async (t) => {
  const { ca, inbound } = await setup(t);
  const cert = await certFor(ca, CLIENT_ID);
  const full = await ticketClient(t, inbound.port, cert);
  assert.equal(full.resumed, false);
  assert.ok(full.tickets.length > 0, 'the server sent session tickets');
  const again = await ticketClient(t, inbound.port, cert, full.tickets[0]);
  assert.equal(again.reply, 'pong:ping');
  assert.equal(again.resumed, true, 'the client resumed');
  const [first, second] = inbound.accepted;
  assert.equal(first?.resumed, false);
  assert.equal(second?.resumed, true, 'the server resumed');
  assert.equal(second?.socket.isSessionReused(), true);
  assert.equal(second?.clientId, CLIENT_ID);
  assert.equal(second?.alpn, MESH_ALPN.h2);
  assert.equal(
    second?.socket.getPeerX509Certificate()?.serialNumber,
    cert.serial.toUpperCase(),
    'the very certificate of the full handshake',
  );
});

void test('after a rotation of the server certificate, earlier tickets fall back to a full handshake with the new one', async (t) => {
  const { ca, serverIdentity, inbound } = await setup(t);
  const cert = await certFor(ca, CLIENT_ID);
  const before = await ticketClient(t, inbound.port, cert);
  serverIdentity.rotate(await certFor(ca, SERVER_ID));
  const after = await ticketClient(t, inbound.port, cert, before.tickets[0]);
  assert.equal(after.resumed, false, 'the new context has new ticket keys');
  assert.equal(after.reply, 'pong:ping');
  assert.equal(inbound.accepted[1]?.resumed, false);
  assert.equal(
    inbound.accepted[1]?.socket.getX509Certificate()?.serialNumber,
    serverIdentity.current().serial.toUpperCase(),
  );
  // The tickets of the new context work.
  assert.equal((await ticketClient(t, inbound.port, cert, after.tickets[0])).resumed, true);
});

void test('with session resumption off, the server resumes no session', async (t) => {
  const { ca, inbound } = await setup(t, { sessionResumption: false });
  const cert = await certFor(ca, CLIENT_ID);
  const full = await ticketClient(t, inbound.port, cert);
  // OpenSSL still sends (stateful) tickets; the server keeps no session to resume them with.
  assert.ok(full.tickets.length > 0);
  for (const ticket of full.tickets) assert.equal((await ticketClient(t, inbound.port, cert, ticket)).resumed, false);
  assert.ok(inbound.accepted.every((c) => !c.resumed));
  assert.equal(inbound.accepted.length, 1 + full.tickets.length);
});

void test('a resumed session whose client certificate has expired since the full handshake is refused', async (t) => {
  const { ca, inbound } = await setup(t);
  const cert = await certFor(ca, CLIENT_ID, { lifetimeMs: 2000 });
  const full = await ticketClient(t, inbound.port, cert);
  assert.equal(full.reply, 'pong:ping');
  // Certificate times have whole seconds: wait until it has surely expired.
  const expires = Date.parse(new crypto.X509Certificate(cert.leafPem).validTo);
  await new Promise((r) => setTimeout(r, expires - Date.now() + 1100));
  const late = await ticketClient(t, inbound.port, cert, full.tickets[0]).catch((e: Error) => e);
  assert.ok(late instanceof Error, 'the client was cut off');
  await waitFor('the refusal', () => inbound.refused.length === 1);
  assert.match(
    inbound.refused[0]?.message ?? '',
    /resumed session of spiffe:\/\/cluster\.local\/ns\/default\/sa\/web: its certificate expired/,
  );
  assert.equal(inbound.accepted.length, 1);
});

void test('a mesh ClientHello is told from an app TLS ClientHello, also when it arrives in pieces', async (t) => {
  const hellos: Buffer[] = [];
  const server = net.createServer((raw) => raw.once('data', (d: Buffer) => (hellos.push(d), raw.destroy())));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const hello = async (alpn?: string[], servername?: string) => {
    const n = hellos.length;
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
      ...(servername ? { servername } : {}),
    });
    s.on('error', () => undefined);
    await waitFor('a client hello', () => hellos.length > n);
    return hellos[n] as Buffer;
  };
  const mesh = await hello([MESH_ALPN.opaque]);
  assert.equal(classifyClientHello(mesh), 'mesh');
  assert.equal(classifyClientHello(await hello(['h2', 'http/1.1'], 'example.com')), 'other');
  assert.equal(classifyClientHello(await hello()), 'other');
  for (const cut of [1, 5, 9, mesh.length - 1])
    assert.equal(classifyClientHello(mesh.subarray(0, cut)), undefined, `cut at ${cut}`);
  // The same ClientHello split over two TLS records.
  const body = mesh.subarray(5);
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([22, 3, 1, b.length >> 8, b.length & 0xff]), b]);
  const split = Buffer.concat([rec(body.subarray(0, 40)), rec(body.subarray(40))]);
  assert.equal(classifyClientHello(split.subarray(0, 50)), undefined);
  assert.equal(classifyClientHello(split), 'mesh');
  assert.equal(classifyClientHello(Buffer.from('GET / HTTP/1.1\r\n')), 'other');
});
