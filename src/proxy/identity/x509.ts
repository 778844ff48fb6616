// The proxy's setup of @peculiar/x509 (used only to build CSRs): its decorators need reflect-metadata
// loaded first, and it signs with Node's WebCrypto. (The proxy never imports the control plane's copy.)
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

export const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
