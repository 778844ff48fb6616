import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../core/errors.js';
import { formatPortList } from '../core/ports.js';
import { loadProxyConfig } from './config.js';

void test('defaults match the issue: 4140 / 4143 / 4191 and the default opaque ports', () => {
  const cfg = loadProxyConfig({}, {});
  assert.equal(cfg.outboundPort, 4140);
  assert.equal(cfg.inboundPort, 4143);
  assert.equal(cfg.adminPort, 4191);
  assert.equal(formatPortList(cfg.opaquePorts), '25,587,3306,4444,5432,6379,9300,11211');
  assert.equal(cfg.detectTimeoutMs, 10000);
  assert.ok(Object.isFrozen(cfg));
});

void test('flags win over environment variables, which win over defaults', () => {
  const cfg = loadProxyConfig({ inboundPort: '5000' }, { OUTRIGGER_PROXY_INBOUND_PORT: '6000', OUTRIGGER_PROXY_ADMIN_PORT: '7000' });
  assert.equal(cfg.inboundPort, 5000);
  assert.equal(cfg.adminPort, 7000);
});

void test('every problem is reported at once, each with its flag and variable', () => {
  assert.throws(
    () => loadProxyConfig({ outboundPort: '70000', connectTimeoutMs: 'soon' }, { OUTRIGGER_PROXY_OPAQUE_PORTS: '25,x', OUTRIGGER_PROXY_LOG_LEVEL: 'loud' }),
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
