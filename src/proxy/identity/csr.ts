// A new workload key and its CSR. The key is generated in memory and only ever leaves this process as
// the public half inside the CSR (a private key is never written anywhere); its PEM stays in memory for
// node:tls.
// The CSR is a PKCS#10 request (RFC 2986) written with node:crypto and a little DER: an empty subject,
// the P-256 public key, and one extensionRequest attribute (RFC 2985 section 5.4.2) holding a critical
// subjectAltName with the identity as its only URI (RFC 5280 section 4.2.1.6: critical because the
// subject is empty), signed with ecdsa-with-SHA256 (RFC 5758 section 3.2).
import { generateKeyPairSync, sign } from 'node:crypto';
import type { SpiffeId } from '../../api/identity.js';
import {
  bitString,
  booleanTrue,
  contextConstructed,
  objectIdentifier,
  octetString,
  sequence,
  setOf,
  smallInteger,
  tlv,
} from './der.js';

export interface KeyAndCsr {
  /** PKCS#8 PEM of the private key, in memory only. */
  readonly keyPem: string;
  readonly csrPem: string;
}

const OID = {
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
} as const;

/** GeneralName's uniformResourceIdentifier: [6] IMPLICIT IA5String. */
const URI_TAG = 0x86;

/** Generates an ECDSA P-256 key and a CSR asking for `identity` as its only (URI) SAN. */
export function newKeyAndCsr(identity: SpiffeId): KeyAndCsr {
  // IA5String is ASCII; a SPIFFE ID is ASCII by construction (spiffeIdFor), checked here anyway.
  if (!/^[\x20-\x7e]+$/.test(identity))
    throw new RangeError(`identity ${JSON.stringify(identity)}: not printable ASCII, so not a URI SAN`);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const san = sequence(tlv(URI_TAG, Buffer.from(identity, 'ascii')));
  const extensions = sequence(sequence(objectIdentifier(OID.subjectAltName), booleanTrue(), octetString(san)));
  const info = sequence(
    smallInteger(0), // version v1
    sequence(), // subject: empty Name
    publicKey.export({ type: 'spki', format: 'der' }),
    contextConstructed(0, sequence(objectIdentifier(OID.extensionRequest), setOf(extensions))),
  );
  // node:crypto signs ECDSA as DER (Ecdsa-Sig-Value), which is what the BIT STRING holds.
  const signature = sign('sha256', info, privateKey);
  const csr = sequence(info, sequence(objectIdentifier(OID.ecdsaWithSha256)), bitString(signature));
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: pem('CERTIFICATE REQUEST', csr),
  };
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
