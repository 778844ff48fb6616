// The test matrix (README, Development): test/runtime-policy.test.ts again, with the per-host data plane.
// The scenario is the same file, not a copy; only the data plane its mesh is brought up with differs.
process.env['OUTRIGGER_TEST_DATA_PLANE'] = 'per-host';
await import('./runtime-policy.test.js');
