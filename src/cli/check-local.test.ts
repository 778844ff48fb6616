// `outrigger check --local`: the local CA's expiry judged from the state directory (no daemon needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshCa } from '../control/identity/ca.js';

const BIN = fileURLToPath(new URL('../../../bin/outrigger.js', import.meta.url));

function check(dir: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'check', '--local', '--state-dir', dir], (err, stdout) =>
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout }),
    );
  });
}

void test('check --local: ok, a warning within 30 days, an error once the issuer expired; each says how to rotate', async (t) => {
  const base = await mkdtemp(path.join(tmpdir(), 'outrigger-check-local-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const mk = async (name: string, o: Parameters<typeof MeshCa.openDir>[1]) => {
    await MeshCa.openDir(path.join(base, name, 'identity'), o);
    return path.join(base, name);
  };
  const fine = await check(await mk('fine', {}));
  assert.equal(fine.code, 0, fine.stdout);
  assert.match(fine.stdout, /^✓ issuer certificate: valid until /m);
  const soon = await check(await mk('soon', { issuerLifetimeSeconds: 10 * 86_400 }));
  assert.equal(soon.code, 0, soon.stdout);
  assert.match(
    soon.stdout,
    /^! issuer certificate: expires .*, in 9 days\n {4}hint: rotate it: outrigger trust rotate --state-dir /m,
  );
  const past = new Date(Date.now() - 2 * 86_400_000);
  const gone = await check(await mk('gone', { now: () => past, issuerLifetimeSeconds: 3600 }));
  assert.equal(gone.code, 1, gone.stdout);
  assert.match(gone.stdout, /^✗ issuer certificate: expired .*: no proxy can get or renew a certificate$/m);
});
