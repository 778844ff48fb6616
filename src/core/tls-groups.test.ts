import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { HYBRID_GROUP, MESH_ECDH_CURVE, MESH_GROUPS, groupSupported } from './tls-groups.js';

void test('groups: the hybrid post-quantum group first exactly when this OpenSSL has it, then X25519 and P-256', () => {
  const [major, minor] = process.versions.openssl.split('.').map(Number) as [number, number];
  const hybrid = major > 3 || (major === 3 && minor >= 5);
  assert.equal(groupSupported(HYBRID_GROUP), hybrid, `OpenSSL ${process.versions.openssl}`);
  assert.deepEqual(MESH_GROUPS, hybrid ? [HYBRID_GROUP, 'X25519', 'P-256'] : ['X25519', 'P-256']);
  assert.equal(MESH_ECDH_CURVE, hybrid ? '*X25519MLKEM768:*X25519:P-256' : 'X25519:P-256');
  // The string is one this OpenSSL takes, and an unknown group is not.
  assert.doesNotThrow(() => tls.createSecureContext({ ecdhCurve: MESH_ECDH_CURVE }));
  assert.equal(groupSupported('NoSuchGroup'), false);
});
