// End-to-end, as root: nothing secret crosses the pod network in clear. A packet capture runs from
// before `outrigger up` until after the mesh has started, every proxy has been issued certificates of
// a few seconds (so renewed several times, each renewal a new TLS connection to the control plane with
// the proxy's client certificate) and two pods have served HTTP traffic. The capture then holds no
// ServiceAccount token (the test reads them from the runtime's token files), no private key (the CA's
// issuer key, the token signing key, any PEM private key), and every TCP connection to the control
// plane's port starts with a TLS handshake record from both ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { hostOf, meshTest } from './mesh-harness.js';
import { tcpSegments } from './pcap.js';
import { WEB_SERVER } from './pod-programs.js';

const LIFETIME_S = 5;

function manifest(dir: string): string {
  return `
apiVersion: v1
kind: ServiceAccount
metadata: {name: web-sa}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web-sa
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - {name: GREETING, value: hello}
          readinessProbe:
            httpGet: {path: /, port: 8080}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

/** The pods' ServiceAccount tokens the runtime wrote: `<state>/tokens/<namespace>/<pod>/token`. */
async function tokenFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tokenFiles(p)));
    else if (e.isFile() && e.name === 'token') out.push(p);
  }
  return out;
}

/** Whether `needle` (at least 16 bytes) occurs in the capture. */
const holds = (haystack: Buffer, needle: Buffer): boolean => needle.length >= 16 && haystack.includes(needle);

void test(
  'a capture of the pod network while a mesh starts, rotates certificates and serves traffic holds no secret in clear',
  { timeout: 300_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-capture', {
      what: 'the control plane TLS capture test',
      tools: [['tcpdump', '--version']],
      needs: 'iproute2, iptables, util-linux (setpriv), curl, python3 and tcpdump',
      files: { 'web.py': WEB_SERVER },
    });
    if (mesh === undefined) return;
    const { stateDir, work } = mesh;
    const { podCidr, controlPort } = mesh.net;
    const gateway = hostOf(podCidr, 1);

    // The bridge does not exist before `up` (and frames between two pods never reach the bridge device
    // itself), so the capture is on every interface, filtered to this mesh's pod network: it sees the
    // proxies' first connections to the control plane on the gateway address, and pod-to-pod traffic.
    const pcap = join(work, 'mesh.pcap');
    const dump = spawn('tcpdump', ['-i', 'any', '-U', '-n', '-s', '0', '-w', pcap, 'tcp', 'and', 'net', podCidr], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let dumpErr = '';
    dump.stderr.on('data', (d: Buffer) => (dumpErr += d.toString()));
    const dumped = new Promise<void>((resolve) => dump.on('close', () => resolve()));
    mesh.defer(() => {
      if (dump.exitCode === null && dump.signalCode === null && dump.pid !== undefined)
        process.kill(dump.pid, 'SIGKILL');
    });
    for (let i = 0; i < 100 && !/listening on/.test(dumpErr); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(dumpErr, /listening on/, dumpErr);

    const up = await mesh.up(manifest(work), ['--cert-lifetime', String(LIFETIME_S)]);
    assert.match(up.stdout, /identity for trust domain cluster\.local/);

    // Traffic between the two pods, over the mesh, across three certificate lifetimes.
    const until = Date.now() + 3 * LIFETIME_S * 1000;
    let requests = 0;
    while (Date.now() < until) {
      const r = await mesh.exec('client', ['curl', '-sS', '-m', '10', '--fail', `http://web/capture-${requests}`]);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, new RegExp(`^hello web-\\S+ /capture-${requests}\\n$`));
      requests++;
      await new Promise((r) => setTimeout(r, 250));
    }
    // Both proxies renewed their certificate (over a new connection that presents the old one).
    for (const pod of (await mesh.pods()).map((p) => p.name)) {
      const renewed = await mesh.metric(pod, 'identity_cert_refresh_count');
      assert.ok(renewed >= 2, `${pod}: ${renewed} certificates`);
    }
    // tcpdump writes as it goes but may lag on a busy machine: a last plaintext marker to wait for, sent
    // from the host to a pod's admin port (not meshed traffic).
    const web = (await mesh.pods()).find((p) => p.deployment === 'web');
    assert.ok(web !== undefined);
    await fetch(`http://${web.ip}:4191/capture-done`).catch(() => undefined);
    for (let i = 0; i < 200 && !(await readFile(pcap)).includes('capture-done'); i++)
      await new Promise((r) => setTimeout(r, 100));
    if (dump.pid !== undefined) process.kill(dump.pid, 'SIGTERM');
    await dumped;
    const bytes = await readFile(pcap);
    assert.ok(bytes.includes('capture-done'), `the capture (${bytes.length} bytes) holds the last marker: ${dumpErr}`);

    // No ServiceAccount token, whole or any of its three parts (the signature alone would be enough to
    // recognise it; the claims alone say whose it is).
    const tokens = await tokenFiles(join(stateDir, 'tokens'));
    assert.equal(tokens.length, 2, `a token per meshed pod: ${tokens.join(', ')}`);
    for (const file of tokens) {
      const token = (await readFile(file, 'utf8')).trim();
      assert.equal(token.split('.').length, 3, `${file} holds a JWT`);
      assert.ok(!holds(bytes, Buffer.from(token)), `the token of ${file} crossed the pod network in clear`);
      for (const part of token.split('.'))
        assert.ok(!holds(bytes, Buffer.from(part)), `a part of the token of ${file} crossed in clear`);
    }
    // No private key: not as PEM, not the CA's issuer or anchor key nor the token key as DER.
    assert.ok(!bytes.includes('PRIVATE KEY'), 'a PEM private key crossed the pod network in clear');
    for (const name of ['issuer.key', 'trust-anchor.key', 'token-signing.key']) {
      const der = createPrivateKey(await readFile(join(stateDir, 'identity', name), 'utf8')).export({
        type: 'pkcs8',
        format: 'der',
      });
      assert.ok(!holds(bytes, der), `${name} crossed the pod network in clear`);
      // The private scalar alone (the last 32 bytes of a P-256 PKCS#8 key's ECPrivateKey, before the
      // public key): the key in any encoding would hold it.
      const jwk = createPrivateKey(await readFile(join(stateDir, 'identity', name), 'utf8')).export({ format: 'jwk' });
      assert.ok(!holds(bytes, Buffer.from(jwk.d ?? '', 'base64url')), `the scalar of ${name} crossed in clear`);
    }

    // Every connection to the control plane is TLS from its first byte, both ways: a handshake record
    // (content type 22, version 3.x; RFC 8446 section 5.1).
    const segments = tcpSegments(bytes);
    const flows = new Map<string, { client?: Buffer; server?: Buffer }>();
    for (const s of segments) {
      const toControl = s.dst === gateway && s.dstPort === controlPort;
      const fromControl = s.src === gateway && s.srcPort === controlPort;
      if (!toControl && !fromControl) continue;
      const key = toControl ? `${s.src}:${s.srcPort}` : `${s.dst}:${s.dstPort}`;
      const f = flows.get(key) ?? {};
      flows.set(key, f);
      if (s.payload.length === 0) continue;
      if (toControl) f.client ??= s.payload;
      else f.server ??= s.payload;
    }
    const isHandshake = (b: Buffer | undefined) => b !== undefined && b[0] === 0x16 && b[1] === 0x03;
    const firstBytes = (b: Buffer | undefined) => b?.subarray(0, 8).toString('hex') ?? 'none';
    const opened = [...flows.entries()].filter(([, f]) => f.client !== undefined);
    // Each proxy connects at least twice: for its first certificate, then again presenting it.
    assert.ok(opened.length >= 4, `connections to the control plane in the capture: ${opened.length}`);
    for (const [client, f] of opened) {
      assert.ok(isHandshake(f.client), `${client} -> control plane began with ${firstBytes(f.client)}, not TLS`);
      if (f.server !== undefined)
        assert.ok(isHandshake(f.server), `control plane -> ${client} began with ${firstBytes(f.server)}, not TLS`);
    }
    console.log(
      `# capture: ${bytes.length} bytes, ${segments.length} segments, ${opened.length} control plane connections, all TLS; ${requests} requests; no token, no key`,
    );
  },
);
