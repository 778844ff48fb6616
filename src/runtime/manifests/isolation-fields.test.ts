// The pod fields the runtime's isolation honours: each bad value is refused naming its field and file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from './index.js';

const refused = (yaml: string): string => {
  try {
    parseManifests([{ file: 'iso.yaml', text: yaml }]);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail('accepted');
};

void test('resources, securityContext, volumes: bad values are named with their field', () => {
  const msg = refused(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  volumes: [{name: data, emptyDir: {sizeLimit: lots}}]
  containers:
    - name: a
      command: [sleep, infinity]
      resources: {requests: {cpu: 2, memory: 1Gi}, limits: {cpu: 500m, memory: 64MB}}
      securityContext: {runAsNonRoot: true, capabilities: {add: [NET_ADMINS]}, allowPrivilegeEscalation: true}
      volumeMounts: [{name: cache, mountPath: /cache}, {name: data, mountPath: /cache/}]
`);
  for (const want of [
    /iso\.yaml: document 1 \(Pod default\/p\): spec\.volumes\[0\]\.emptyDir\.sizeLimit: must be a memory quantity/,
    /spec\.containers\[0\]\.resources\.limits\.memory: must be a memory quantity .*"64MB"/,
    /spec\.containers\[0\]\.resources\.requests\.cpu: must not exceed limits\.cpu \(500m\), got 2/,
    /spec\.containers\[0\]\.securityContext\.runAsNonRoot: is true but the container would run as root/,
    /spec\.containers\[0\]\.securityContext\.capabilities\.add\[0\]: unknown capability "NET_ADMINS"/,
    /spec\.containers\[0\]\.securityContext\.allowPrivilegeEscalation: cannot be true/,
    /spec\.containers\[0\]\.volumeMounts\[0\]\.name: the pod has no volume named "cache" \(its volumes: data\)/,
    /spec\.containers\[0\]\.volumeMounts\[1\]\.mountPath: duplicate mountPath \/cache/,
  ])
    assert.match(msg, want);
});

void test('shareProcessNamespace: true and false are honoured; another value is refused, named', () => {
  const msg = refused(`apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  shareProcessNamespace: "yes"
  containers: [{name: a, command: [sleep, infinity]}]
`);
  assert.match(
    msg,
    /iso\.yaml: document 1 \(Pod default\/p\): spec\.shareProcessNamespace: must be true or false, got "yes"/,
  );
});

void test('a pod with every honoured field is accepted', () => {
  const set = parseManifests([
    {
      file: 'ok.yaml',
      text: `apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  shareProcessNamespace: true
  securityContext: {runAsUser: 1000, runAsNonRoot: true}
  volumes: [{name: data, emptyDir: {}}]
  containers:
    - name: a
      command: [sleep, infinity]
      resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: "1", memory: 64Mi}}
      securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}
      volumeMounts: [{name: data, mountPath: /run/data, readOnly: true}]
`,
    },
  ]);
  assert.equal(set.pods.length, 1);
  assert.equal(set.pods[0]?.spec.shareProcessNamespace, true);
});
