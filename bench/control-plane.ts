// The benchmark's control plane, run as its own process (bench/control.ts drives it): a LocalStore
// behind the real gRPC server (startControlPlane), changed by JSON lines on stdin so that its CPU is
// its own and it never shares an event loop with the load or the simulated proxies.
//
// It serves TLS only, as every control plane does, with a certificate from a mesh CA it holds in memory.
// With `--identity DIR` (the mtls scenario) it also serves the identity service (Certify) whose token
// reviewer knows the bench's two pods, and it writes into DIR
// (0600): one ServiceAccount token per bench pod (`<sa>.token`, for the two outrigger proxies), and for
// the haproxy pair the same kind of leaf the proxies get (ECDSA P-256, SPIFFE URI SAN, signed by the
// issuer): `haproxy-<sa>.pem` (leaf + issuer + key) and `ca.pem` (the trust anchor). Those keys are the
// bench's, on disk because haproxy reads its key from a file; the proxies' keys never leave them.
//
// stdout, one JSON line each: first {"port":N,"trustAnchorPem":"...","identity":"spiffe://..."} (after DIR
// is written: what a proxy needs to trust it); then one reply per command:
//   {"id":N,"t_ns":"<process.hrtime.bigint() taken just before store.replace>","cpu_us":N,"watchers":N}
// stdin, one JSON line each: {"id":N,"replace":StoreContent} or {"id":N} (only the figures).
// hrtime is CLOCK_MONOTONIC on Linux, one clock for every process of the machine, so the driver can
// subtract it from its own readings.
import { createPrivateKey, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { SpiffeId } from '../src/api/identity.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { Certifier } from '../src/control/identity/certify.js';
import { addIdentityService } from '../src/control/identity/service.js';
import { LocalTokenIssuer } from '../src/control/identity/tokens.js';
import { P256 } from '../src/control/identity/x509.js';
import { startControlPlane, type ControlPlaneOptions } from '../src/control/server.js';
import { LocalStore, type StoreContent } from '../src/control/store/local/local.js';
import { MESH_NAMESPACE, MESH_PODS, TRUST_DOMAIN, spiffeOf } from './identity.js';

interface Command {
  id: number;
  replace?: StoreContent;
}

/** `--identity DIR` from our argv, or undefined. */
function identityDirArg(argv: readonly string[]): string | undefined {
  const i = argv.indexOf('--identity');
  return i >= 0 ? argv[i + 1] : undefined;
}

/** A key and a leaf for `identity` from the mesh CA, as haproxy wants it: leaf, issuer, key in one PEM. */
async function haproxyPem(ca: MeshCa, identity: SpiffeId): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const now = Date.now();
  const leaf = await ca.signLeaf({
    publicKey: keys.publicKey,
    identity,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return leaf.pem + ca.issuerPem + keyPem;
}

/** The identity service, and the files the driver needs in `dir`. */
async function setUpIdentity(ca: MeshCa, dir: string): Promise<ControlPlaneOptions['services']> {
  const tokens = await LocalTokenIssuer.create();
  const known = new Set(MESH_PODS.map((p) => `${MESH_NAMESPACE}/${p.name}/${p.uid}`));
  const reviewer = tokens.reviewer((namespace, pod) => known.has(`${namespace}/${pod.name}/${pod.uid}`));
  const certifier = new Certifier({ ca, reviewer });
  for (const p of MESH_PODS) {
    const token = await tokens.issue(
      { namespace: MESH_NAMESPACE, serviceAccount: p.serviceAccount, pod: { name: p.name, uid: p.uid } },
      { lifetimeSeconds: 24 * 3600 },
    );
    writeFileSync(path.join(dir, `${p.serviceAccount}.token`), token, { mode: 0o600 });
    writeFileSync(path.join(dir, `haproxy-${p.serviceAccount}.pem`), await haproxyPem(ca, spiffeOf(p.serviceAccount)), {
      mode: 0o600,
    });
  }
  writeFileSync(path.join(dir, 'ca.pem'), ca.trustAnchorPem, { mode: 0o600 });
  return (server) => addIdentityService(server, { certifier });
}

async function main(): Promise<void> {
  const store = new LocalStore();
  const identityDir = identityDirArg(process.argv.slice(2));
  const ca = await MeshCa.create({ trustDomain: TRUST_DOMAIN });
  const services = identityDir !== undefined ? await setUpIdentity(ca, identityDir) : undefined;
  const cp = await startControlPlane({
    store,
    host: '127.0.0.1',
    port: 0,
    ca,
    ...(services ? { services } : {}),
  });
  process.stdout.write(
    JSON.stringify({ port: cp.address.port, trustAnchorPem: ca.trustAnchorPem, identity: cp.identity }) + '\n',
  );

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = JSON.parse(line) as Command;
    const t = process.hrtime.bigint();
    if (cmd.replace !== undefined) store.replace(cmd.replace);
    const cpu = process.cpuUsage();
    const reply = {
      id: cmd.id,
      t_ns: t.toString(),
      cpu_us: cpu.user + cpu.system,
      watchers: cp.destination.watchers(),
    };
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
  // The driver holds our stdin open; when it goes away (even by SIGKILL) we go too.
  const quit = (): void => void cp.close().finally(() => process.exit(0));
  lines.on('close', quit);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench control plane: ${String(err)}\n`);
  process.exit(1);
});
