// The catalogue of error codes (docs/errors.md) and the codes in the source, kept in step both ways:
// every code a registry defines is documented, every documented code exists, and no code is written
// outside a registry (a string literal in src/ that no registry holds would escape this check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoreCodes } from '../src/core/errors.js';
import { Codes } from '../src/proxy/errors/errors.js';
import { TlsCodes } from '../src/proxy/tls/errors.js';
import { H2Codes } from '../src/proxy/http2/wire/errors.js';
import { IdentityCodes, IdentityFileCodes } from '../src/control/identity/errors.js';
import { ManifestCodes } from '../src/manifests/errors.js';
import { RuntimeCodes } from '../src/runtime/errors.js';
import { LabCodes } from '../src/lab/errors.js';
import { ChannelTlsCodes } from '../src/api/grpc/tls.js';
import { AccessCodes } from '../src/control/access.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/test/ → the project
const REGISTRIES: Record<string, Readonly<Record<string, string>>> = {
  CoreCodes,
  Codes,
  TlsCodes,
  H2Codes,
  ChannelTlsCodes,
  AccessCodes,
  IdentityCodes,
  IdentityFileCodes,
  ManifestCodes,
  RuntimeCodes,
  LabCodes,
};
const CODE = /OUTR_ERR_[A-Z0-9_]+/;

/** Every code, with the registries that define it. */
function registryCodes(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, reg] of Object.entries(REGISTRIES)) {
    for (const code of Object.values(reg)) out.set(code, [...(out.get(code) ?? []), name]);
  }
  return out;
}

/** The codes the catalogue documents: one `### \`OUTR_ERR_...\`` heading each, in document order. */
async function documentedCodes(): Promise<string[]> {
  const text = await readFile(join(ROOT, 'docs', 'errors.md'), 'utf8');
  return [...text.matchAll(/^#{2,4} `(OUTR_ERR_[A-Z0-9_]+)`\s*$/gm)].map((m) => m[1] ?? '');
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (/\.(ts|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

void test('every code is in exactly one registry, and every registry code looks like one', () => {
  for (const [code, owners] of registryCodes()) {
    assert.match(code, new RegExp(`^${CODE.source}$`), `${owners.join(', ')}: ${code}`);
    assert.equal(owners.length, 1, `${code} is defined by ${owners.join(' and ')}`);
  }
});

void test('every code in the source is documented in docs/errors.md', async () => {
  const documented = new Set(await documentedCodes());
  const missing = [...registryCodes()]
    .filter(([code]) => !documented.has(code))
    .map(([code, owners]) => `${code} (${owners.join(', ')})`);
  const how = 'add these to docs/errors.md, each as a "### `CODE`" heading with what it means and what to do';
  assert.deepEqual(missing, [], how);
});

void test('every code docs/errors.md documents exists in a registry, once', async () => {
  const codes = registryCodes();
  const documented = await documentedCodes();
  assert.ok(documented.length > 0, 'docs/errors.md lists no codes');
  const stale = documented.filter((c) => !codes.has(c));
  assert.deepEqual(stale, [], 'docs/errors.md documents codes that no registry defines: remove them or define them');
  const twice = documented.filter((c, i) => documented.indexOf(c) !== i);
  assert.deepEqual(twice, [], 'docs/errors.md documents these codes more than once');
});

void test('no code is written in src/ outside a registry', async () => {
  const codes = registryCodes();
  const stray: string[] = [];
  for (const file of await sourceFiles(join(ROOT, 'src'))) {
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(new RegExp(`['"\`](${CODE.source})['"\`]`, 'g'))) {
      const code = m[1] ?? '';
      if (!codes.has(code)) stray.push(`${file.slice(ROOT.length)}: ${code}`);
    }
  }
  assert.deepEqual(stray, [], 'define these codes in a registry (and import the registry in this test)');
});
