// `outrigger identity [-n NS] POD`: the certificate a pod's proxy holds now (identity, issuer, validity,
// serial; never the key), read from the proxy's admin server across the bridge.
import { Command, Option } from 'commander';
import type { IdentityView } from '../proxy/admin/server.js';
import { findPod, fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { adminGet, adminToken } from '../daemon/admin-get.js';

interface IdentityOptions {
  readonly namespace: string;
  readonly output?: string;
  readonly stateDir: string;
}

export function identityCommand(): Command {
  return new Command('identity')
    .description("show the certificate a pod's proxy holds: identity, issuer, validity, serial")
    .argument('<pod>', 'a pod name, or deploy/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (ref: string, o: IdentityOptions) => {
      const dir = stateDir(o.stateDir);
      const status = await liveStatus('identity', dir);
      const pod = findPod(status, o.namespace, ref);
      if (typeof pod === 'string') fail('identity', pod);
      if (!pod.meshed)
        fail('identity', `pod ${pod.namespace}/${pod.name} is not meshed: it has no proxy and no identity`);
      let r: { status: number; body: string };
      try {
        r = await adminGet(pod.ip, '/identity', await adminToken(dir));
      } catch (err) {
        return fail('identity', `the proxy of ${pod.namespace}/${pod.name} does not answer: ${(err as Error).message}`);
      }
      if (r.status !== 200)
        fail('identity', `pod ${pod.namespace}/${pod.name}: ${r.body.trim() || `status ${r.status}`}`);
      const v = JSON.parse(r.body) as IdentityView;
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
        return;
      }
      const rows: [string, string][] = [
        ['identity', v.identity],
        ['issuer', v.issuer],
        ['not before', v.notBefore],
        ['not after', v.notAfter],
        ['serial', v.serial],
        ...(v.keyExchange !== undefined
          ? ([
              ['key exchange', v.keyExchange.offered.join(', ')],
              ['last agreed', v.keyExchange.lastNegotiated ?? '(no outbound handshake yet)'],
            ] as [string, string][])
          : []),
      ];
      process.stdout.write(rows.map(([k, val]) => `${k.padEnd(12)}${val}`).join('\n') + '\n');
    });
}
