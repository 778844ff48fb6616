// A container environment as Kubernetes builds it: fieldRefs, order, $(VAR) expansion (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { baseEnv, containerEnv, expandVars, type PodFacts } from './env.js';

void test('expandVars: Kubernetes $(VAR) rules', () => {
  const env = { A: 'x', B: 'y z', EMPTY: '' };
  assert.equal(expandVars('$(A)', env), 'x');
  assert.equal(expandVars('pre-$(A)-$(B)-post', env), 'pre-x-y z-post');
  assert.equal(expandVars('$(EMPTY)|', env), '|');
  assert.equal(expandVars('$(MISSING)', env), '$(MISSING)', 'undefined stays as written');
  assert.equal(expandVars('$$(A)', env), '$(A)', '$$ escapes');
  assert.equal(expandVars('$$$(A)', env), '$x');
  assert.equal(expandVars('cost $5 and $', env), 'cost $5 and $', 'a lone $ is kept');
  assert.equal(expandVars('$(A', env), '$(A', 'unclosed is kept');
  assert.equal(expandVars('$HOME ${A}', env), '$HOME ${A}', 'shell syntax is not ours');
  assert.equal(expandVars('$(constructor)', env), '$(constructor)', 'no prototype lookups');
});

const facts: PodFacts = {
  namespace: 'shop',
  name: 'web-0',
  uid: 'u-1',
  serviceAccountName: 'default',
  nodeName: 'laptop',
  podIP: '10.244.0.5',
  hostIP: '10.244.0.1',
};

void test('containerEnv: base, then entries in order, fieldRefs resolved, references to earlier ones', () => {
  const base = baseEnv(
    { PATH: '/bin:/usr/bin', LANG: 'C.UTF-8', SECRET_OF_HOST: 'no' },
    { hostname: 'web-0', home: '/root' },
  );
  assert.deepEqual(
    base,
    { PATH: '/bin:/usr/bin', HOME: '/root', HOSTNAME: 'web-0', LANG: 'C.UTF-8' },
    'the host environment does not leak',
  );
  const env = containerEnv(
    base,
    [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'URL', value: 'http://$(POD_IP):8080/$(NS)/$(LATER)' },
      { name: 'LATER', value: 'l' },
      { name: 'HOSTNAME', value: 'override-$(HOSTNAME)' },
      { name: 'NOVALUE' },
    ],
    facts,
  );
  assert.equal(env.POD_IP, '10.244.0.5');
  assert.equal(env.URL, 'http://10.244.0.5:8080/shop/$(LATER)', 'only earlier variables expand');
  assert.equal(env.HOSTNAME, 'override-web-0');
  assert.equal(env.NOVALUE, '');
  assert.equal(
    baseEnv({}, { hostname: 'h', home: '/' }).PATH?.includes('/usr/bin'),
    true,
    'a PATH even when the host has none',
  );
});
