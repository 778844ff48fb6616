// The layers of the source tree, checked by dependency-cruiser (`npm run lint:deps`, part of `npm test`).
// Imports point down: core ← api ← manifests ← {proxy, control} ← {runtime, kube, observe} ← daemon ←
// {dashboard, lab} ← cli. A folder may import its own files and the layers below it, never a peer or a layer
// above; and no import cycles at all. README.md ("Development") says why each layer sits where it does.

/** Each layer of src/ and the layers it may import (besides itself). */
const LAYERS = {
  core: [],
  api: ['core'],
  manifests: ['core', 'api'],
  proxy: ['core', 'api', 'manifests'],
  control: ['core', 'api', 'manifests'],
  runtime: ['core', 'api', 'manifests', 'proxy', 'control'],
  kube: ['core', 'api', 'manifests', 'proxy', 'control'],
  observe: ['core', 'api', 'manifests', 'proxy', 'control'],
  daemon: ['core', 'api', 'manifests', 'proxy', 'control', 'runtime', 'kube', 'observe'],
  dashboard: ['core', 'api', 'manifests', 'proxy', 'control', 'runtime', 'kube', 'observe', 'daemon'],
  lab: ['core', 'api', 'manifests', 'proxy', 'control', 'runtime', 'kube', 'observe', 'daemon'],
  cli: ['core', 'api', 'manifests', 'proxy', 'control', 'runtime', 'kube', 'observe', 'daemon', 'dashboard', 'lab'],
};

/** Unit tests (foo.test.ts beside foo.ts) are leaves: nothing imports them and no process loads them, so
 *  they may bring up a peer to test against (a proxy test starts a real control plane). */
const TEST = '\\.test\\.ts$';

const layerRules = Object.entries(LAYERS).map(([layer, below]) => ({
  name: `layer-${layer}`,
  comment: `src/${layer} may import only ${below.length > 0 ? `src/{${below.join(',')}}` : 'itself'} (imports point down)`,
  severity: 'error',
  from: { path: `^src/${layer}/`, pathNot: TEST },
  to: {
    path: '^(src|bench|test)/',
    pathNot: `^src/(${[layer, ...below].join('|')})/`,
  },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: 'control-not-runtime',
      comment:
        'the control plane stands without the local runtime (the kubernetes store uses it too): not even its tests import it',
      severity: 'error',
      from: { path: '^src/control/' },
      to: { path: '^src/(runtime|daemon|kube|dashboard|cli)/' },
    },
    {
      name: 'no-tests-imported',
      comment: 'src/ never imports a test, bench/ or test/',
      severity: 'error',
      from: { path: '^src/', pathNot: TEST },
      to: { path: `(^(bench|test)/)|${TEST}` },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles: a cycle makes the order modules load in matter, and hides a missing layer',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve is a typo or a missing dependency',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|native)/' },
    // Type-only imports count: a layer that needs another's types depends on it all the same.
    tsPreCompilationDeps: true,
    // NodeNext: `./foo.js` in a .ts file is ./foo.ts.
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
