// A new workload key and its CSR. The key is generated in memory and only ever leaves this process as
// the public half inside the CSR (DESIGN.md, security rules); its PEM stays in memory for node:tls.
import { createPrivateKey, webcrypto } from 'node:crypto';
import type { SpiffeId } from '../../api/identity.js';
import { P256, x509 } from './x509.js';

export interface KeyAndCsr {
  /** PKCS#8 PEM of the private key, in memory only. */
  readonly keyPem: string;
  readonly csrPem: string;
}

/** Generates an ECDSA P-256 key and a CSR asking for `identity` as its only (URI) SAN. */
export async function newKeyAndCsr(identity: SpiffeId): Promise<KeyAndCsr> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: P256,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identity }], true)],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, csrPem: csr.toString('pem') + '\n' };
}
