// The one place the control plane sets up @peculiar/x509: its decorators need reflect-metadata loaded
// first, and it signs and verifies with Node's WebCrypto.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

/** A random positive 128-bit serial (RFC 5280 section 4.1.2.2 allows up to 20 octets). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = ((b[0] as number) & 0x7f) | 0x40;
  return b.toString('hex');
}

/** ECDSA P-256 with SHA-256: every key the mesh creates, and what it signs with. */
export const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
