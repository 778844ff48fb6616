// End-to-end, as root: automatic mTLS between meshed pods. One mesh brought up with the real
// `outrigger up` and certificates that live a few seconds: a meshed web Deployment with its own
// ServiceAccount behind a Service, an opaque banner server, a meshed client and an unmeshed one.
// A packet capture on the bridge never sees a payload in clear; identities are the pods' service
// accounts; requests keep flowing, none failing, across several certificate lifetimes; the only
// private keys on disk are the CA's issuer and anchor keys and the runtime's token key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { meshTest } from './mesh-harness.js';
import { sumMetric } from './metrics-text.js';
import { BANNER_CLIENT, BANNER_SERVER, WEB_SERVER } from './pod-programs.js';

const LIFETIME_S = 6;
const MARKER = 'Zebra-Quokka-7781'; // in requests and responses; must never cross the bridge in clear

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
  replicas: 2
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
            - {name: GREETING, value: ${MARKER}}
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
metadata:
  name: banner
  annotations: {config.outrigger.io/opaque-ports: "9000"}
spec:
  containers:
    - name: banner
      command: [python3, -u, ${join(dir, 'banner.py')}, "9000", "${MARKER} banner"]
      readinessProbe:
        tcpSocket: {port: 9000}
        periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
---
apiVersion: v1
kind: Pod
metadata:
  name: plain-client
  annotations: {outrigger.io/inject: disabled}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

/** Every regular file below `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

void test(
  'mTLS between meshed pods: nothing in clear, identities, rotation under load, no keys on disk',
  { timeout: 240_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-identity', {
      what: 'the end-to-end mTLS test',
      tools: [['tcpdump', '--version']],
      needs: 'iproute2, iptables, util-linux (setpriv), curl, python3 and tcpdump',
      files: { 'web.py': WEB_SERVER, 'banner.py': BANNER_SERVER, 'read-banner.py': BANNER_CLIENT },
    });
    if (mesh === undefined) return;
    const { stateDir, work } = mesh;
    const { bridge, podCidr: cidr } = mesh.net;
    const up = await mesh.up(manifest(work), ['--cert-lifetime', String(LIFETIME_S)]);
    assert.match(up.stdout, /identity for trust domain cluster\.local/);

    const pods = await mesh.pods();
    const banner = pods.find((p) => p.name === 'banner');
    assert.ok(banner, JSON.stringify(pods));
    const webPods = pods.filter((p) => p.deployment === 'web');
    const exec = (pod: string, argv: readonly string[]) => mesh.exec(pod, argv);
    const metrics = (pod: string) => mesh.metrics(pod);

    await t.test('outrigger identity: each pod holds its service account identity from the mesh CA', async () => {
      const r = await mesh.cli(['identity', 'deploy/web']);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^identity\s+spiffe:\/\/cluster\.local\/ns\/default\/sa\/web-sa$/m);
      assert.match(r.stdout, /^serial\s+[0-9a-f]+$/m);
      const c = await mesh.cli(['identity', 'client', '-o', 'json']);
      assert.equal(c.code, 0, show(c));
      const v = JSON.parse(c.stdout) as { identity: string; notAfter: string; notBefore: string };
      assert.equal(v.identity, 'spiffe://cluster.local/ns/default/sa/default');
      const life = (Date.parse(v.notAfter) - Date.parse(v.notBefore)) / 1000;
      assert.ok(life <= LIFETIME_S + 61, `a short-lived certificate (${life} s incl. clock skew allowance)`);
      const plain = await mesh.cli(['identity', 'plain-client']);
      assert.equal(plain.code, 1);
      assert.match(plain.stderr, /not meshed/);
    });

    await t.test('a capture on the pod network sees TLS between meshed pods, never the payload', async () => {
      const pcap = join(work, 'pods.pcap');
      // Frames switched between two ports of a bridge never reach the bridge device itself, so the
      // capture is on every interface (the pods' veths among them), filtered to this test's pod CIDR.
      const dump = spawn('tcpdump', ['-i', 'any', '-U', '-n', '-s', '0', '-w', pcap, 'tcp', 'and', 'net', cidr], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let dumpErr = '';
      dump.stderr.on('data', (d: Buffer) => (dumpErr += d.toString()));
      const dumped = new Promise<void>((resolve) => dump.on('close', () => resolve()));
      mesh.defer(() => {
        if (dump.exitCode === null && dump.signalCode === null) dump.kill('SIGKILL');
      });
      for (let i = 0; i < 100 && !/listening on/.test(dumpErr); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(dumpErr, /listening on/, dumpErr);

      const before = await metrics('client');
      for (let i = 0; i < 5; i++) {
        const r = await exec('client', ['curl', '-sS', '-m', '10', '--fail', `http://web/${MARKER}-${i}`]);
        assert.equal(r.code, 0, show(r));
        assert.match(r.stdout, new RegExp(`^${MARKER} web-\\S+ /${MARKER}-${i}\\n$`));
      }
      const b = await exec('client', ['python3', join(work, 'read-banner.py'), banner.ip, '9000']);
      assert.equal(b.code, 0, show(b));
      assert.equal(b.stdout, `${MARKER} banner\n`);
      // The unmeshed client's request is plaintext by design: it must show up (the capture works).
      const p = await exec('plain-client', ['curl', '-sS', '-m', '10', '--fail', `http://web/plain-${MARKER}`]);
      assert.equal(p.code, 0, show(p));
      // tcpdump writes what it has read as it goes; on a busy machine it lags, so the last exchange (the
      // plaintext one) is awaited in the file before it is stopped.
      for (let i = 0; i < 200 && !(await readFile(pcap)).toString('latin1').includes(`plain-${MARKER}`); i++)
        await new Promise((r) => setTimeout(r, 100));
      dump.kill('SIGTERM');
      await dumped;

      const bytes = await readFile(pcap);
      const text = bytes.toString('latin1');
      assert.ok(
        text.includes(`plain-${MARKER}`),
        `the capture (${bytes.length} bytes; tcpdump said: ${dumpErr.trim()}) holds the unmeshed client's plaintext request`,
      );
      // The unmeshed exchange carries the marker too, so the meshed ones are checked by their own strings.
      for (let i = 0; i < 5; i++)
        assert.ok(!text.includes(`/${MARKER}-${i}`), `request ${i} crossed the bridge in clear`);
      assert.ok(!text.includes(`${MARKER} banner`), 'the opaque banner crossed the bridge in clear');
      console.log(`# capture: ${bytes.length} bytes, no meshed payload in clear`);

      const after = await metrics('client');
      const tlsOut =
        sumMetric(after, 'request_total', {
          direction: 'outbound',
          tls: 'true',
          server_id: 'spiffe://cluster.local/ns/default/sa/web-sa',
        }) -
        sumMetric(before, 'request_total', {
          direction: 'outbound',
          tls: 'true',
          server_id: 'spiffe://cluster.local/ns/default/sa/web-sa',
        });
      assert.equal(tlsOut, 5, after);
      let inbound = 0;
      for (const w of webPods)
        inbound += sumMetric(await metrics(w.name), 'request_total', {
          direction: 'inbound',
          tls: 'true',
          client_id: 'spiffe://cluster.local/ns/default/sa/default',
        });
      assert.ok(inbound >= 5, `the web proxies saw the client's identity on ${inbound} requests`);
    });

    await t.test(
      `requests keep flowing across several ${LIFETIME_S} s certificate lifetimes, none failing`,
      async () => {
        const refreshes = async () => {
          let n = 0;
          for (const p of ['client', ...webPods.map((w) => w.name)])
            n += sumMetric(await metrics(p), 'identity_cert_refresh_count', {});
          return n;
        };
        const startRefreshes = await refreshes();
        const load = mesh.loadLoop('client', 'web', 80, '/load', { keepAlive: true });
        await new Promise((r) => setTimeout(r, LIFETIME_S * 3.5 * 1000));
        const s = await load.stop();
        console.log(`# during rotation: ${s.ok} requests ok, ${s.fail} failed`);
        assert.equal(s.fail, 0, JSON.stringify(s));
        assert.ok(s.ok > 100, JSON.stringify(s));
        const rotated = (await refreshes()) - startRefreshes;
        assert.ok(rotated >= 6, `certificates were renewed meanwhile (${rotated} renewals over three proxies)`);
      },
    );

    await t.test(
      'the only private keys on disk are the issuer key, the anchor key (kept for trust rotate) and the token key, all 0600, all in the state directory pods do not see',
      async () => {
        const holders: string[] = [];
        for (const f of [
          ...(await filesUnder(stateDir)),
          ...(await filesUnder('/etc/netns').then((fs) => fs.filter((x) => x.includes(bridge)))),
        ]) {
          if ((await readFile(f)).toString('latin1').includes('PRIVATE KEY')) holders.push(f);
        }
        assert.deepEqual(holders.sort(), [
          join(stateDir, 'identity', 'issuer.key'),
          join(stateDir, 'identity', 'token-signing.key'),
          join(stateDir, 'identity', 'trust-anchor.key'),
        ]);
        for (const k of holders) assert.equal((await stat(k)).mode & 0o777, 0o600, k);
      },
    );
  },
);
