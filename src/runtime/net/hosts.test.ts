import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHosts, renderResolvConf, serviceHostNames } from './hosts.js';

void test('service names: the short name only from the same namespace', () => {
  assert.deepEqual(serviceHostNames('web', 'default', 'default'), [
    'web',
    'web.default',
    'web.default.svc',
    'web.default.svc.cluster.local',
  ]);
  assert.deepEqual(serviceHostNames('db', 'shop', 'default'), ['db.shop', 'db.shop.svc', 'db.shop.svc.cluster.local']);
});

void test('hosts file: loopback, own hostname, services', () => {
  const text = renderHosts({ namespace: 'default', name: 'web-0', hostname: 'web-0', ip: '10.250.3.2' }, [
    { ip: '10.96.0.10', names: serviceHostNames('web', 'default', 'default') },
  ]);
  assert.equal(
    text,
    [
      '# Written by outrigger for pod default/web-0; rewritten in place when Services change.',
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      '10.250.3.2\tweb-0',
      '10.96.0.10\tweb web.default web.default.svc web.default.svc.cluster.local',
      '',
    ].join('\n'),
  );
  assert.throws(
    () => renderHosts({ namespace: 'd', name: 'p', hostname: 'p', ip: '10.0.0.1' }, [{ ip: 'x', names: ['a'] }]),
    /not an IPv4 address/,
  );
  assert.throws(
    () =>
      renderHosts({ namespace: 'd', name: 'p', hostname: 'p', ip: '10.0.0.1' }, [{ ip: '10.0.0.2', names: ['a b'] }]),
    /not a host name/,
  );
});

void test('resolv.conf searches the pod namespace first', () => {
  assert.match(renderResolvConf('shop'), /^search shop\.svc\.cluster\.local svc\.cluster\.local cluster\.local$/m);
  assert.match(renderResolvConf('shop'), /^nameserver 127\.0\.0\.1$/m);
});
