// The layer check (`npm run lint:deps`, .dependency-cruiser.cjs) proves itself: run on a small tree of
// deliberately bad imports in a temporary directory, it must fail and name the broken rule; on good
// imports it must pass. A rule a bad import does not trip checks nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root (this file is dist/src/layers.test.js). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

/** Runs the project's layer check over `files` (path → source) laid out in a fresh directory. */
async function check(files: Readonly<Record<string, string>>): Promise<{ ok: boolean; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-layers-'));
  try {
    await copyFile(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
    const tsconfig = {
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true },
      include: ['src'],
    };
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    const r = spawnSync(
      process.execPath,
      [DEPCRUISE, 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    assert.equal(r.error, undefined, String(r.error));
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A module that exports one constant, for others to import. */
const leaf = 'export const x = 1;\n';

void test('imports that point down pass (a NodeNext `.js` import of a .ts file resolves)', async () => {
  const r = await check({
    'src/core/log.ts': leaf,
    'src/manifests/contract.ts': "import { x } from '../core/log.js';\nexport const y = x;\n",
    'src/proxy/env.ts': "import { y } from '../manifests/contract.js';\nexport const z = y;\n",
    'src/control/server.ts': "import { y } from '../manifests/contract.js';\nexport const z = y;\n",
    'src/runtime/mesh.ts':
      "import { z } from '../control/server.js';\nimport { z as p } from '../proxy/env.js';\nexport const m = z + p;\n",
    'src/daemon/server.ts': "import { m } from '../runtime/mesh.js';\nexport const d = m;\n",
    'src/cli/main.ts': "import { d } from '../daemon/server.js';\nexport const c = d;\n",
    // A unit test may bring up a peer to test against (a proxy test starts a control plane).
    'src/proxy/env.test.ts': "import { z } from '../control/server.js';\nexport const t = z;\n",
  });
  assert.ok(r.ok, r.output);
});

void test('an import up or across the layers fails, naming the rule', async () => {
  const r = await check({
    'src/daemon/server.ts': leaf,
    'src/proxy/env.ts': "import { x } from '../daemon/server.js';\nexport const y = x;\n",
  });
  assert.ok(!r.ok, r.output);
  assert.match(r.output, /layer-proxy: src\/proxy\/env\.ts → src\/daemon\/server\.ts/);
});

void test("a type-only import counts: the control plane may not name the runtime's types", async () => {
  const r = await check({
    'src/runtime/mesh.ts': 'export interface Mesh { readonly name: string }\n',
    'src/control/server.ts':
      "import type { Mesh } from '../runtime/mesh.js';\nexport const f = (m: Mesh): string => m.name;\n",
  });
  assert.ok(!r.ok, r.output);
  assert.match(r.output, /layer-control: src\/control\/server\.ts → src\/runtime\/mesh\.ts/);
});

void test('peers may not import each other (runtime and kube)', async () => {
  const r = await check({
    'src/runtime/net/proxy-init.ts': leaf,
    'src/kube/inject.ts': "import { x } from '../runtime/net/proxy-init.js';\nexport const y = x;\n",
  });
  assert.ok(!r.ok, r.output);
  assert.match(r.output, /layer-kube: src\/kube\/inject\.ts → src\/runtime\/net\/proxy-init\.ts/);
});

void test('not even a control plane test imports the runtime', async () => {
  const r = await check({
    'src/runtime/mesh.ts': leaf,
    'src/control/store.test.ts': "import { x } from '../runtime/mesh.js';\nexport const y = x;\n",
  });
  assert.ok(!r.ok, r.output);
  assert.match(r.output, /control-not-runtime: src\/control\/store\.test\.ts → src\/runtime\/mesh\.ts/);
});

void test('an import cycle fails, even inside one folder', async () => {
  const r = await check({
    'src/core/a.ts': "import { b } from './b.js';\nexport const a = (): number => b() + 1;\n",
    'src/core/b.ts': "import { a } from './a.js';\nexport const b = (): number => a() - 1;\n",
  });
  assert.ok(!r.ok, r.output);
  assert.match(r.output, /no-circular: src\/core\/(a|b)\.ts →/);
});
