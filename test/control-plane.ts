// The control plane as a test fixture, for the tests of what talks to it (discovery, policy watches,
// proxies with identity): on loopback, trust domain cluster.local, quiet unless OUTRIGGER_TEST_LOG is set.
// It serves TLS with a certificate from its mesh CA (a new one unless the test gives one, e.g. to start
// it again with the same trust anchor), and hands the test what a client needs: the channel's TLS
// settings, and certificates of any workload identity from that CA.
import { createPrivateKey, webcrypto } from 'node:crypto';
import type { ChannelTls, ClientCertificate } from '../src/api/grpc/tls.js';
import { spiffeIdFor, type SpiffeId } from '../src/api/identity.js';
import { createLogger } from '../src/core/log.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { P256 } from '../src/control/identity/x509.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../src/control/server.js';

export type TestControlPlaneOptions = Pick<ControlPlaneOptions, 'store'> &
  Partial<Omit<ControlPlaneOptions, 'store'>> & { readonly trustDomain?: string };

export interface TestControlPlane extends ControlPlane {
  readonly addr: string;
  readonly ca: MeshCa;
  /** What a GrpcChannel needs to reach it: the trust anchor and the identity it serves with. */
  readonly channelTls: ChannelTls;
}

/** A logger for a test's control plane: silent, or at info when OUTRIGGER_TEST_LOG is set. */
export const controlLog = () =>
  createLogger('test-control', process.env.OUTRIGGER_TEST_LOG === undefined ? 'silent' : 'info');

/**
 * Starts the control plane on 127.0.0.1 (port 0 unless one is given). On a given port it retries for
 * about 5 s while a control plane closed just before still holds it: a test that restarts the control
 * plane must find it on the same address (and gives it the same `ca`). The test closes it (t.after).
 */
export async function startTestControlPlane(o: TestControlPlaneOptions): Promise<TestControlPlane> {
  const { trustDomain, ...rest } = o;
  const ca = o.ca ?? (await MeshCa.create({ trustDomain: trustDomain ?? 'cluster.local' }));
  const defaults = { host: '127.0.0.1', port: 0, log: controlLog() };
  const options: ControlPlaneOptions = { ...defaults, ...rest, ca };
  for (let i = 0; ; i++) {
    try {
      const cp = await startControlPlane(options);
      return Object.assign(cp, {
        addr: `${cp.address.host}:${cp.address.port}`,
        ca,
        channelTls: { trustAnchors: ca.trustAnchorPem, serverIdentity: cp.identity },
      });
    } catch (err) {
      if (options.port === 0 || i > 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A key and a certificate from `ca` for `identity` (or a ServiceAccount's in the CA's trust domain), as
 *  a proxy holds them after Certify. */
export async function workloadCertificate(
  ca: MeshCa,
  identity: SpiffeId | { readonly namespace: string; readonly serviceAccount: string },
  lifetimeSeconds = 3600,
): Promise<ClientCertificate & { readonly identity: SpiffeId }> {
  const id = typeof identity === 'string' ? identity : spiffeIdFor({ trustDomain: ca.trustDomain, ...identity });
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const now = Date.now();
  const leaf = await ca.signLeaf({
    publicKey: keys.publicKey,
    identity: id,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + lifetimeSeconds * 1000),
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { identity: id, keyPem, certChainPem: leaf.pem + ca.issuerPem };
}
