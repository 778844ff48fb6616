// The injector's serving certificate: a small CA of its own (its certificate goes into the
// MutatingWebhookConfiguration's caBundle) and a server certificate for the webhook Service's DNS
// names. Separate from the mesh CA on purpose: the API server trusting the webhook has nothing to do
// with workload identity, and rotating one must not touch the other.
import { createPrivateKey, webcrypto } from 'node:crypto';
import { P256, randomSerial, x509 } from '../control/identity/x509.js';

export interface ServingTls {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const DAY_MS = 24 * 3600 * 1000;

/** DNS names the API server may use for `service.namespace`. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

/** A new CA and server certificate (ECDSA P-256) for `dnsNames` (plus `ips`), valid `lifetimeDays`. */
export async function makeServingTls(
  dnsNames: readonly string[],
  opts: { lifetimeDays?: number; ips?: readonly string[]; now?: Date } = {},
): Promise<ServingTls> {
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60_000);
  const notAfter = new Date(now.getTime() + (opts.lifetimeDays ?? 365) * DAY_MS);
  const caKeys = await webcrypto.subtle.generateKey(P256, false, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=outrigger injector CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${dnsNames[0] ?? 'outrigger-injector'}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    caPem: ca.toString('pem') + '\n',
    certPem: cert.toString('pem') + '\n',
    keyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
      type: 'pkcs8',
      format: 'pem',
    }) as string,
  };
}

/** notAfter of the first certificate in a PEM. */
export function certNotAfter(pem: string): Date {
  return new x509.X509Certificate(pem).notAfter;
}
