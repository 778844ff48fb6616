import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from './load.js';
import { takeOver } from './takeover.js';

const pod = (name: string, ns?: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}${ns !== undefined ? `, namespace: ${ns}` : ''}}\nspec:\n  containers: [{name: c, command: [sleep, infinity]}]\n`;

void test('a file applied later takes over the objects it shares with earlier files', () => {
  const earlier = new Map([
    ['/a.yaml', { file: 'a.yaml', text: [pod('one'), pod('two'), pod('three', 'other')].join('---\n') }],
    ['/b.yaml', { file: 'b.yaml', text: pod('solo') }],
  ]);
  const applied = new Map([['/c.yaml', { file: 'c.yaml', text: [pod('two'), pod('solo')].join('---\n') }]]);
  const { sources, moved } = takeOver(earlier, applied);
  assert.deepEqual(moved.sort(), ['Pod/default/solo from b.yaml', 'Pod/default/two from a.yaml']);
  assert.deepEqual([...sources.keys()].sort(), ['/a.yaml', '/c.yaml'], 'a file left with nothing is dropped');
  const set = parseManifests([...sources.values()], { knownNamespaces: ['default', 'other'] });
  assert.deepEqual(set.pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.source.file}`).sort(), [
    'default/one@a.yaml',
    'default/solo@c.yaml',
    'default/two@c.yaml',
    'other/three@a.yaml',
  ]);
});

void test('the same file applied again replaces itself; a same name in another namespace is another object', () => {
  const earlier = new Map([['/a.yaml', { file: 'a.yaml', text: [pod('one'), pod('one', 'other')].join('---\n') }]]);
  const { sources, moved } = takeOver(earlier, new Map([['/a.yaml', { file: 'a.yaml', text: pod('one') }]]));
  assert.deepEqual(moved, []);
  assert.equal(sources.get('/a.yaml')?.text, pod('one'));
  const { moved: m2 } = takeOver(earlier, new Map([['/b.yaml', { file: 'b.yaml', text: pod('one', 'other') }]]));
  assert.deepEqual(m2, ['Pod/other/one from a.yaml']);
});
