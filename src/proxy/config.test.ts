import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../core/errors.js';
import { formatPortList } from '../core/ports.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MeshCa } from '../control/identity/ca.js';
import { controlIdentity, controlTls, loadProxyConfig } from './config.js';

/** A real trust anchor (PEM), and an issuer certificate (a CA too) and key to get wrong with. */
const PEMS = await MeshCa.generatePems('cluster.local');

void test('defaults match the issue: 4140 / 4143 / 4191 and the default opaque ports', () => {
  const cfg = loadProxyConfig({}, {});
  assert.equal(cfg.outboundPort, 4140);
  assert.equal(cfg.inboundPort, 4143);
  assert.equal(cfg.adminPort, 4191);
  assert.equal(formatPortList(cfg.opaquePorts), '25,587,3306,4444,5432,6379,9300,11211');
  assert.equal(cfg.detectTimeoutMs, 10000);
  assert.equal(cfg.meshTlsSessionResumption, true);
  assert.ok(Object.isFrozen(cfg));
});

void test('flags win over environment variables, which win over defaults', () => {
  const cfg = loadProxyConfig(
    { inboundPort: '5000' },
    { OUTRIGGER_PROXY_INBOUND_PORT: '6000', OUTRIGGER_PROXY_ADMIN_PORT: '7000' },
  );
  assert.equal(cfg.inboundPort, 5000);
  assert.equal(cfg.adminPort, 7000);
});

void test('every problem is reported at once, each with its flag and variable', () => {
  assert.throws(
    () =>
      loadProxyConfig(
        { outboundPort: '70000', connectTimeoutMs: 'soon' },
        { OUTRIGGER_PROXY_OPAQUE_PORTS: '25,x', OUTRIGGER_PROXY_LOG_LEVEL: 'loud' },
      ),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 4, err.message);
      assert.match(err.message, /--outbound-port \(OUTRIGGER_PROXY_OUTBOUND_PORT\).*70000/);
      assert.match(err.message, /--connect-timeout-ms .*"soon"/);
      assert.match(err.message, /--opaque-ports .*"x"/);
      assert.match(err.message, /--log-level/);
      return true;
    },
  );
});

void test('a switch is true or false, by flag or variable', () => {
  assert.equal(loadProxyConfig({ meshTlsSessionResumption: 'false' }, {}).meshTlsSessionResumption, false);
  assert.equal(
    loadProxyConfig({}, { OUTRIGGER_PROXY_MESH_TLS_SESSION_RESUMPTION: 'false' }).meshTlsSessionResumption,
    false,
  );
  assert.throws(
    () => loadProxyConfig({ meshTlsSessionResumption: 'no' }, {}),
    /--mesh-tls-session-resumption \(OUTRIGGER_PROXY_MESH_TLS_SESSION_RESUMPTION\): must be true or false, got "no"/,
  );
});

void test('listener ports must differ; a static destination must be HOST:PORT', () => {
  assert.throws(() => loadProxyConfig({ outboundPort: '4000', inboundPort: '4000' }, {}), /must differ/);
  assert.throws(() => loadProxyConfig({ staticDestination: 'nope' }, {}), /--static-destination .*HOST:PORT/);
  assert.throws(() => loadProxyConfig({ staticDestination: '127.0.0.1:4140' }, {}), /proxy's own listener \(a loop\)/);
  assert.deepEqual(loadProxyConfig({ staticDestination: '[::1]:80' }, {}).staticDestination, { host: '::1', port: 80 });
});

void test('opaque ports take the annotation format, ranges included, and name the bad element', () => {
  assert.equal(formatPortList(loadProxyConfig({ opaquePorts: '25, 3306-3308' }, {}).opaquePorts), '25,3306-3308');
  assert.equal(formatPortList(loadProxyConfig({ opaquePorts: '' }, {}).opaquePorts), '');
  assert.throws(() => loadProxyConfig({ opaquePorts: '10-5' }, {}), /--opaque-ports .*range 10-5 starts after it ends/);
  assert.throws(() => loadProxyConfig({ opaquePorts: '0' }, {}), /--opaque-ports .*port 0 is out of range/);
});

void test('numbers, names and lists: each rule says what it wants', () => {
  const problems = (flags: Parameters<typeof loadProxyConfig>[0]): readonly string[] => {
    try {
      loadProxyConfig(flags, {});
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };
  assert.deepEqual(
    problems({
      detectTimeoutMs: 'soon',
      detectMaxBytes: '1.5',
      maxHeaderBytes: '100',
      traceSampleRatio: '2',
      logLevel: 'loud',
      inboundAddr: 'localhost',
      pod: 'web',
    }),
    [
      '--inbound-addr (OUTRIGGER_PROXY_INBOUND_ADDR): must be an IP address, got "localhost"',
      '--pod (OUTRIGGER_PROXY_POD): must be namespace/name, got "web"',
      '--detect-timeout-ms (OUTRIGGER_PROXY_DETECT_TIMEOUT_MS): must be a number of milliseconds, got "soon"',
      '--detect-max-bytes (OUTRIGGER_PROXY_DETECT_MAX_BYTES): must be an integer, got "1.5"',
      '--max-header-bytes (OUTRIGGER_PROXY_MAX_HEADER_BYTES): must be at least 1024, got "100"',
      '--trace-sample-ratio (OUTRIGGER_PROXY_TRACE_SAMPLE_RATIO): must be from 0 to 1, got "2"',
      '--log-level (OUTRIGGER_PROXY_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
  );
  const cfg = loadProxyConfig(
    {
      traceSampleRatio: '0.25',
      pod: 'shop/web-1',
      identity: 'spiffe://cluster.local/ns/shop/sa/web',
      identityAddr: '10.0.0.1:8086',
      identityTokenFile: '/t',
      trustAnchors: PEMS.trustAnchorPem,
    },
    {},
  );
  assert.equal(cfg.traceSampleRatio, 0.25);
  assert.equal(cfg.pod, 'shop/web-1');
  assert.deepEqual(cfg.identityAddr, { host: '10.0.0.1', port: 8086 });
  assert.equal(cfg.podNamespace, '');
});

void test('app probes: every problem, each with the path of what is wrong', () => {
  const bad = {
    Web: { port: 0, scheme: 'FTP', path: 'x', extra: 1 },
    ok: { port: 80, scheme: 'HTTP', headers: [{ name: '', value: 'v' }] },
  };
  assert.throws(
    () => loadProxyConfig({ appProbes: JSON.stringify(bad) }, {}),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(
        err.problems[0]?.startsWith(
          '--app-probes (OUTRIGGER_PROXY_APP_PROBES): Web: a probe name must be lower-case letters, digits, "-" and "."; Web: unknown key "extra"; ' +
            'Web.port: must be an integer from 1 to 65535; Web.scheme: must be one of HTTP, HTTPS, TCP; Web.path: must be a string starting with "/"; ' +
            'ok.headers.0: must be {name, value}, the name not empty',
        ),
        err.problems[0],
      );
      return true;
    },
  );
  assert.throws(() => loadProxyConfig({ appProbes: '[]' }, {}), /--app-probes .*must be an object of probes by name/);
  const probes = loadProxyConfig({ appProbes: '{"web-liveness": {"port": 8080, "scheme": "TCP"}}' }, {}).appProbes;
  assert.deepEqual([...(probes ?? [])], [['web-liveness', { port: 8080, scheme: 'TCP' }]]);
});

void test('per-host data plane settings: the pod namespace to reach the app from, and the outbound sources', () => {
  const cfg = loadProxyConfig({ inboundNetns: '/run/netns/outr-web', outboundSources: '10.244.0.5, 10.244.0.6' }, {});
  assert.equal(cfg.inboundNetns, '/run/netns/outr-web');
  assert.deepEqual(cfg.outboundSources, ['10.244.0.5', '10.244.0.6']);
  const none = loadProxyConfig({}, {});
  assert.equal(none.inboundNetns, undefined);
  assert.equal(none.outboundSources, undefined);
  assert.throws(
    () => loadProxyConfig({ inboundNetns: 'outr-web', outboundSources: '10.0.0.1,pod' }, {}),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems.length === 2 &&
      /--inbound-netns/.test(err.message) &&
      /--outbound-sources/.test(err.message),
  );
});

void test('the control plane serves only TLS: its address needs trust anchors, and policy needs mTLS', async (t) => {
  const problems = (flags: Parameters<typeof loadProxyConfig>[0]): readonly string[] => {
    try {
      loadProxyConfig(flags, {});
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };
  assert.deepEqual(problems({ destinationAddr: '10.0.0.1:8086' }), [
    "--destination-addr (OUTRIGGER_PROXY_DESTINATION_ADDR) need the mesh's trust anchors, --trust-anchors (OUTRIGGER_PROXY_TRUST_ANCHORS) or --trust-anchors-file (OUTRIGGER_PROXY_TRUST_ANCHORS_FILE): the control plane serves only TLS, and its certificate is checked against them",
  ]);
  assert.deepEqual(problems({ policyAddr: '10.0.0.1:8086', pod: 'shop/web-1', trustAnchors: PEMS.trustAnchorPem }), [
    "--policy-addr (OUTRIGGER_PROXY_POLICY_ADDR) needs mTLS (--identity-addr, --identity-token-file, --identity): the policy service answers only a proxy that presents its pod's certificate",
  ]);
  assert.deepEqual(problems({ trustAnchors: 'nope' }), [
    '--trust-anchors (OUTRIGGER_PROXY_TRUST_ANCHORS): must be PEM certificates ("-----BEGIN CERTIFICATE-----"), got "nope"',
  ]);
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const leafFile = path.join(dir, 'leaf.pem');
  await writeFile(leafFile, PEMS.issuerKeyPem);
  assert.deepEqual(problems({ destinationAddr: '10.0.0.1:8086', trustAnchorsFile: path.join(dir, 'none.pem') }), [
    `--trust-anchors-file (OUTRIGGER_PROXY_TRUST_ANCHORS_FILE): cannot read ${path.join(dir, 'none.pem')} (ENOENT)`,
  ]);
  assert.deepEqual(problems({ trustAnchorsFile: leafFile }), [
    `--trust-anchors-file (OUTRIGGER_PROXY_TRUST_ANCHORS_FILE): ${leafFile} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
  ]);
  assert.deepEqual(problems({ trustAnchors: PEMS.trustAnchorPem, trustAnchorsFile: leafFile }), [
    '--trust-anchors (OUTRIGGER_PROXY_TRUST_ANCHORS) and --trust-anchors-file (OUTRIGGER_PROXY_TRUST_ANCHORS_FILE): give one of them, not both',
    `--trust-anchors-file (OUTRIGGER_PROXY_TRUST_ANCHORS_FILE): ${leafFile} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
  ]);

  // The identity expected of the control plane: given, or the control plane's in the proxy's trust domain.
  const file = path.join(dir, 'anchors.pem');
  await writeFile(file, PEMS.trustAnchorPem);
  const cfg = loadProxyConfig(
    {
      destinationAddr: '10.0.0.1:8086',
      trustAnchorsFile: file,
      identity: 'spiffe://example.org/ns/shop/sa/web',
      identityAddr: '10.0.0.1:8086',
      identityTokenFile: '/t',
    },
    {},
  );
  assert.equal(controlIdentity(cfg), 'spiffe://example.org/ns/outrigger/sa/outrigger-control-plane');
  assert.equal(
    controlIdentity(loadProxyConfig({ controlIdentity: 'spiffe://td/ns/mesh/sa/outrigger-control-plane' }, {})),
    'spiffe://td/ns/mesh/sa/outrigger-control-plane',
  );
  assert.equal(
    controlIdentity(loadProxyConfig({}, {})),
    'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
  );
  // The file is read again for each connection; a bad file then keeps the anchors read before.
  const seen: string[] = [];
  const tls = controlTls(cfg, (p) => seen.push(p));
  assert.ok(tls !== undefined && typeof tls.trustAnchors === 'function');
  assert.equal(tls.trustAnchors(), PEMS.trustAnchorPem);
  await writeFile(file, 'garbage');
  assert.equal(tls.trustAnchors(), PEMS.trustAnchorPem);
  assert.deepEqual(seen, [`${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`]);
});
