// The control plane as a test fixture, for the tests of what talks to it (discovery, policy watches,
// proxies with identity): on loopback, trust domain cluster.local, quiet unless OUTRIGGER_TEST_LOG is set.
import { createLogger } from '../src/core/log.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../src/control/server.js';

export type TestControlPlaneOptions = Pick<ControlPlaneOptions, 'store'> & Partial<Omit<ControlPlaneOptions, 'store'>>;

/** A logger for a test's control plane: silent, or at info when OUTRIGGER_TEST_LOG is set. */
export const controlLog = () =>
  createLogger('test-control', process.env.OUTRIGGER_TEST_LOG === undefined ? 'silent' : 'info');

/**
 * Starts the control plane on 127.0.0.1 (port 0 unless one is given). On a given port it retries for
 * about 5 s while a control plane closed just before still holds it: a test that restarts the control
 * plane must find it on the same address. The test closes it (t.after).
 */
export async function startTestControlPlane(
  o: TestControlPlaneOptions,
): Promise<ControlPlane & { readonly addr: string }> {
  const defaults = { host: '127.0.0.1', port: 0, trustDomain: 'cluster.local', log: controlLog() };
  const options: ControlPlaneOptions = { ...defaults, ...o };
  for (let i = 0; ; i++) {
    try {
      const cp = await startControlPlane(options);
      return Object.assign(cp, { addr: `${cp.address.host}:${cp.address.port}` });
    } catch (err) {
      if (options.port === 0 || i > 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
