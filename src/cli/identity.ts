// `outrigger identity [-n NS] POD`: the certificate a pod's proxy holds now (identity, issuer, validity,
// serial; never the key), read from the proxy's admin server across the bridge.
import http from 'node:http';
import { Command, Option } from 'commander';
import type { IdentityView } from '../proxy/admin/server.js';
import { findPod, fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';

interface IdentityOptions {
  readonly namespace: string;
  readonly output?: string;
  readonly stateDir: string;
}

function getJson(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export function identityCommand(): Command {
  return new Command('identity')
    .description("show the certificate a pod's proxy holds: identity, issuer, validity, serial")
    .argument('<pod>', 'a pod name, or deploy/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (ref: string, o: IdentityOptions) => {
      const status = await liveStatus('identity', stateDir(o.stateDir));
      const pod = findPod(status, o.namespace, ref);
      if (typeof pod === 'string') fail('identity', pod);
      if (!pod.meshed)
        fail('identity', `pod ${pod.namespace}/${pod.name} is not meshed: it has no proxy and no identity`);
      let r: { status: number; body: string };
      try {
        r = await getJson(`http://${pod.ip}:${PROXY_ADMIN_PORT}/identity`, 5000);
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
      ];
      process.stdout.write(rows.map(([k, val]) => `${k.padEnd(12)}${val}`).join('\n') + '\n');
    });
}
