// The driver's handle on the upstream child (bench/upstream.ts): start it and read the ports it prints.
import { fileURLToPath } from 'node:url';
import { spawnManaged, waitUntil, type Managed } from './tools.js';
import type { UpstreamPorts } from './upstream.js';

const UPSTREAM_SCRIPT = fileURLToPath(new URL('./upstream.js', import.meta.url));

/** Starts bench/upstream.js and reads the ports it prints on its first stdout line. `listenHost`:
 *  where its servers listen (default 127.0.0.1). */
export async function startUpstream(
  slowMs: number,
  listenHost?: string,
): Promise<{ proc: Managed; ports: UpstreamPorts }> {
  const args = [
    UPSTREAM_SCRIPT,
    '--slow-ms',
    String(slowMs),
    ...(listenHost !== undefined ? ['--listen-host', listenHost] : []),
  ];
  const proc = spawnManaged('upstream', process.execPath, args);
  let ports: UpstreamPorts | undefined;
  await waitUntil(
    'upstream',
    () => {
      const line = proc.tail().split('\n')[0];
      if (line !== undefined && proc.tail().includes('\n')) ports = JSON.parse(line) as UpstreamPorts;
      return Promise.resolve(ports !== undefined);
    },
    10_000,
    proc,
  );
  if (ports === undefined) throw new Error('unreachable: upstream ports');
  return { proc, ports };
}
