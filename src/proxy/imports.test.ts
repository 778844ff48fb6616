// What `outrigger proxy` loads, read from the compiled modules it imports (static and dynamic): the
// proxy runs in every pod, so each package on its path costs memory in every pod. A new one must be
// added to PACKAGES below on purpose, with its reason; and the proxy never loads the control plane,
// the runtime or another command (they meet over the API only), nor of the manifests more than the
// contract values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The packages the proxy may load, and why each is worth its memory. */
const PACKAGES: Readonly<Record<string, string>> = {
  pino: 'asynchronous logging that never blocks the event loop',
  'prom-client': 'the /metrics registry, exposition format and process_* metrics',
};

/** Where the compiled modules are (this file is dist/src/proxy/imports.test.js). */
const DIST_SRC = new URL('../', import.meta.url);

/** Every module reachable from `entry` (URLs under dist/src), and every bare specifier they import. */
function graph(entry: URL): { modules: Set<string>; packages: Map<string, string> } {
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  const walk = (url: URL): void => {
    if (modules.has(url.href)) return;
    modules.add(url.href);
    const text = readFileSync(fileURLToPath(url), 'utf8');
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      if (fileName.startsWith('.')) walk(new URL(fileName, url));
      else if (!fileName.startsWith('node:'))
        packages.set(
          fileName
            .split('/')
            .slice(0, fileName.startsWith('@') ? 2 : 1)
            .join('/'),
          rel(url),
        );
    }
  };
  walk(entry);
  return { modules, packages };
}

const rel = (url: URL | string): string => String(url).slice(DIST_SRC.href.length);

void test('outrigger proxy loads only the packages it is allowed, and no other part of outrigger', () => {
  const { modules, packages } = graph(new URL('cli/proxy.js', DIST_SRC));
  const extra = [...packages].filter(([p]) => !(p in PACKAGES)).map(([p, from]) => `${p} (imported by ${from})`);
  assert.deepEqual(
    extra,
    [],
    'the proxy now loads these: every pod pays for them; if it must, add them to PACKAGES with the reason',
  );
  // Of src/manifests only the contract values: a file of plain constants (the schemas would bring zod).
  const outside = [...modules]
    .map(rel)
    .filter((m) => !/^(proxy|api|core)\//.test(m) && m !== 'cli/proxy.js' && m !== 'manifests/contract.js');
  assert.deepEqual(outside, [], 'the proxy imports only src/proxy, src/api, src/core and src/manifests/contract.ts');
  assert.ok(!modules.has(new URL('api/load.js', DIST_SRC).href), "api/load.ts is the control plane's (grpc-js)");
});

void test('the CLI hands `proxy` over before it loads anything else (commander included)', () => {
  const main = readFileSync(fileURLToPath(new URL('cli/main.js', DIST_SRC)), 'utf8');
  const statements = ts.createSourceFile('main.js', main, ts.ScriptTarget.ES2022).statements;
  assert.deepEqual(
    statements
      .filter((s) => ts.isImportDeclaration(s) || (ts.isExportDeclaration(s) && s.moduleSpecifier !== undefined))
      .map((s) => s.getText()),
    [],
    'cli/main.ts: no static import (it would load before the proxy branch)',
  );
  const branch = main.indexOf("process.argv[2] === 'proxy'");
  assert.ok(
    branch >= 0 && branch < main.indexOf("import('commander')"),
    'the proxy branch comes before commander is imported',
  );
});
