// tables.ts is what the generator makes of the .proto files now: fails when one changed without the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TABLES_FILE, generateTables } from './generate.js';

void test('src/api/proto/tables.ts is generated from the .proto files as they are (else: npm run gen:api)', () => {
  const expected = generateTables();
  const actual = readFileSync(TABLES_FILE, 'utf8');
  if (actual === expected) return;
  const a = actual.split('\n');
  const e = expected.split('\n');
  const i = e.findIndex((line, k) => line !== a[k]);
  assert.fail(
    `src/api/proto/tables.ts differs from what the .proto files say at line ${i + 1}:\n  file:      ${a[i] ?? '(end)'}\n  generated: ${e[i] ?? '(end)'}\nrun \`npm run gen:api\``,
  );
});
