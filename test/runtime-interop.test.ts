// End-to-end, as root: a proxy must work with every client, so gRPC and HTTP/2 are tested with
// implementations other than our runtime's, through meshed pods whose proxies speak mutual TLS to each
// other. gRPC: Python's grpcio (the gRPC C core) and @grpc/grpc-js, each as client and as server, all four
// ways; per pair 10,000 concurrent unary calls (32 at once over one channel) and sequential ones
// (10,000 from Python to Python, the reported failure; 2,000 for the other pairs, to keep the suite's
// time) with zero failures and exact counts in both proxies, server, client and bidi streaming, a deadline, a
// cancel from either side, 8 MB messages, -bin metadata and trailers, and all 16 error statuses passed
// through unchanged. Afterwards no proxy has counted a gRPC response without a grpc-status. HTTP/2: curl,
// nghttp and h2load against a Node HTTP/2 server and nghttpd (C): downloads and uploads checked by
// sha256, trailers, concurrency, 10,000 requests with h2load, a client that gives up, a server reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, show } from './root-helpers.js';
import { meshTest } from './mesh-harness.js';
import { sumMetric } from './metrics-text.js';

const NEEDS =
  "iproute2, iptables, util-linux (setpriv), curl, python3 with Debian's python3-grpcio, nghttp2-client (nghttp, h2load) and nghttp2-server (nghttpd)";

/** Debian's Python, where python3-grpcio lives (a python3 earlier on PATH may be another build). */
const PYTHON = '/usr/bin/python3';
const FIXTURES = join(ROOT, 'test/fixtures/interop');
/** Unary calls per pair, sequential and from many threads over one channel: 10,000 each on the pair the
 *  failure was reported on (grpcio both ends), fewer on the others, so that the matrix stays a few
 *  minutes of a CI run that shares two cores with other mesh tests. */
const SEQUENTIAL = {
  python: { python: 10_000, 'grpc-js': 2_000 },
  'grpc-js': { python: 2_000, 'grpc-js': 2_000 },
} as const;
const CONCURRENT = {
  python: { python: 10_000, 'grpc-js': 3_000 },
  'grpc-js': { python: 3_000, 'grpc-js': 3_000 },
} as const;
const CASES = [
  'server-stream',
  'client-stream',
  'bidi',
  'large',
  'metadata',
  'errors',
  'deadline',
  'cancel-client',
  'cancel-server',
];
const BIG = 20 * 1024 * 1024;

function grpcio(): string | undefined {
  if (spawnSync(PYTHON, ['-c', 'import grpc'], { stdio: 'ignore' }).status !== 0)
    return `${PYTHON} cannot import grpc (apt-get install python3-grpcio)`;
  return undefined;
}

function deployment(name: string, port: number, command: readonly string[]): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers:
        - name: server
          command: ${JSON.stringify(command)}
          ports: [{containerPort: ${port}, name: main}]
          readinessProbe: {tcpSocket: {port: ${port}}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  selector: {app: ${name}}
  ports: [{name: main, port: ${port}, targetPort: main}]
---`;
}

/** Byte i of /bytes downloads (h2-server.js). */
function patternSha256(n: number): string {
  const h = createHash('sha256');
  for (let off = 0; off < n; off += 65536) {
    const len = Math.min(65536, n - off);
    const b = Buffer.allocUnsafe(len);
    for (let i = 0; i < len; i++) b[i] = ((off + i) * 7 + 3) & 0xff;
    h.update(b);
  }
  return h.digest('hex');
}

interface NghttpStream {
  readonly id: number;
  status: string;
  bytes: number;
  ended: boolean;
}

/** What `nghttp -v` received per stream: its status, DATA bytes, and whether it ended (END_STREAM). */
function nghttpStreams(out: string): NghttpStream[] {
  const streams = new Map<number, NghttpStream>();
  const get = (id: number) =>
    streams.get(id) ?? (streams.set(id, { id, status: '', bytes: 0, ended: false }).get(id) as NghttpStream);
  for (const line of out.split('\n')) {
    const status = /recv \(stream_id=(\d+)\) :status: (\d+)/.exec(line);
    if (status) get(Number(status[1])).status = status[2] as string;
    const frame = /recv (DATA|HEADERS) frame <length=(\d+), flags=0x([0-9a-f]+), stream_id=(\d+)>/.exec(line);
    if (frame) {
      const s = get(Number(frame[4]));
      if (frame[1] === 'DATA') s.bytes += Number(frame[2]);
      if ((parseInt(frame[3] as string, 16) & 1) !== 0) s.ended = true;
    }
  }
  return [...streams.values()];
}

interface CaseResult {
  readonly case: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly detail: unknown;
}

void test(
  'interop: gRPC (grpcio and grpc-js, all four ways) and HTTP/2 clients (curl, nghttp, h2load) through meshed pods with mTLS',
  { timeout: 1_200_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-interop', {
      what: 'the gRPC and HTTP/2 interop matrix',
      needs: NEEDS,
      tools: [
        ['nghttp', '--version'],
        ['h2load', '--version'],
        ['nghttpd', '--version'],
      ],
      check: grpcio,
    });
    if (mesh === undefined) return;
    const { work } = mesh;

    // nghttpd's document root: a small page and a large file.
    const docroot = join(work, 'www');
    await mesh.write('www/index.html', '<p>hello from nghttpd</p>\n');
    const big = Buffer.allocUnsafe(BIG);
    for (let i = 0; i < BIG; i++) big[i] = (i * 13 + 5) & 0xff;
    await mesh.write('www/big.bin', big);
    const bigSha = createHash('sha256').update(big).digest('hex');
    await mesh.write('upload.bin', big.subarray(0, 3 * 1024 * 1024));
    const uploadSha = createHash('sha256')
      .update(big.subarray(0, 3 * 1024 * 1024))
      .digest('hex');
    await mesh.write('small.bin', big.subarray(0, 64 * 1024));

    const node = process.execPath;
    const manifest =
      deployment('py-grpc', 50051, [PYTHON, '-u', join(FIXTURES, 'grpc_server.py'), '50051']) +
      deployment('js-grpc', 50051, [node, join(FIXTURES, 'grpc-server.js'), '50051']) +
      deployment('h2-node', 8080, [node, join(FIXTURES, 'h2-server.js'), '8080']) +
      deployment('nghttpd', 8081, ['nghttpd', '--no-tls', '-d', docroot, '8081']) +
      `
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
    await mesh.up(manifest, [], 120_000);

    /** Runs CMD in POD (the client pod, or deploy/NAME) and returns its stdout; asserts the exit code when given. */
    const exec = async (pod: string, cmd: readonly string[], expectCode: number | undefined = 0): Promise<string> => {
      const r = await mesh.exec(pod, cmd, { timeoutMs: 300_000 });
      if (expectCode !== undefined) assert.equal(r.code, expectCode, `${cmd.join(' ')}\n${show(r)}`);
      return r.stdout;
    };
    const metrics = (pod: string) => exec(pod, ['curl', '-s', 'http://127.0.0.1:4191/metrics']);
    const runCases = async (
      client: readonly string[],
      target: string,
      n: number,
      cases: readonly string[],
    ): Promise<CaseResult[]> => {
      const out = await exec('client', [...client, target, String(n), ...cases]);
      const results = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as CaseResult);
      assert.deepEqual(
        results.map((r) => r.case),
        [...cases],
        out,
      );
      return results;
    };
    const clients = {
      python: [PYTHON, join(FIXTURES, 'grpc_client.py')],
      'grpc-js': [node, join(FIXTURES, 'grpc-client.js')],
    } as const;
    const servers = { python: 'py-grpc', 'grpc-js': 'js-grpc' } as const;

    for (const [clientName, client] of Object.entries(clients)) {
      for (const [serverName, service] of Object.entries(servers)) {
        await t.test(`gRPC: ${clientName} client → ${serverName} server`, async () => {
          const authority = { authority: `${service}:50051` };
          const before = { client: await metrics('client'), server: await metrics(`deploy/${service}`) };
          const sequential = SEQUENTIAL[clientName as keyof typeof SEQUENTIAL][serverName as keyof typeof servers];
          const concurrent = CONCURRENT[clientName as keyof typeof CONCURRENT][serverName as keyof typeof servers];
          const unary = [
            ...(await runCases(client, `${service}:50051`, sequential, ['unary-seq'])),
            ...(await runCases(client, `${service}:50051`, concurrent, ['unary-threads'])),
          ];
          for (const r of unary) {
            assert.ok(r.ok, `${r.case}: ${JSON.stringify(r.detail)}`);
            console.log(
              `interop ${clientName} → ${serverName}: ${r.case}, ${JSON.stringify(r.detail)}, ${r.seconds} s`,
            );
          }
          const after = { client: await metrics('client'), server: await metrics(`deploy/${service}`) };
          // Every call counted once, as a success, on both sides.
          const delta = (side: 'client' | 'server', m: Record<string, string>) =>
            sumMetric(after[side], 'response_total', m) - sumMetric(before[side], 'response_total', m);
          assert.equal(
            delta('client', {
              direction: 'outbound',
              ...authority,
              grpc_status_code: '0',
              classification: 'success',
              tls: 'true',
            }),
            sequential + concurrent,
          );
          assert.equal(delta('client', { direction: 'outbound', ...authority, classification: 'failure' }), 0);
          assert.equal(
            delta('server', { direction: 'inbound', grpc_status_code: '0', classification: 'success', tls: 'true' }),
            sequential + concurrent,
          );

          for (const r of await runCases(client, `${service}:50051`, 0, CASES))
            assert.ok(r.ok, `${r.case}: ${JSON.stringify(r.detail)}`);
        });
      }
    }

    await t.test('gRPC: no proxy counted a gRPC response without a grpc-status', async () => {
      // Only gRPC has crossed these proxies so far (the probes are TCP connects to the apps).
      for (const pod of ['client', 'deploy/py-grpc', 'deploy/js-grpc']) {
        const text = await metrics(pod);
        assert.ok(sumMetric(text, 'response_total', {}) > 0, `${pod}: no responses counted`);
        assert.equal(
          sumMetric(text, 'response_total', { grpc_status_code: '' }),
          0,
          `${pod}:\n${text
            .split('\n')
            .filter((l) => l.startsWith('response_total'))
            .join('\n')}`,
        );
      }
    });

    await t.test('HTTP/2: curl against a Node HTTP/2 server and nghttpd', async () => {
      const curl = ['curl', '-sS', '--http2-prior-knowledge', '--max-time', '60'];
      assert.equal(await exec('client', [...curl, 'http://h2-node:8080/hello']), 'hello h2\n');
      assert.equal(await exec('client', [...curl, 'http://nghttpd:8081/index.html']), '<p>hello from nghttpd</p>\n');
      const download = async (url: string) =>
        (await exec('client', ['sh', '-c', `${curl.join(' ')} ${url} | sha256sum`])).split(' ')[0];
      assert.equal(await download(`http://h2-node:8080/bytes?n=${BIG}`), patternSha256(BIG));
      assert.equal(await download('http://nghttpd:8081/big.bin'), bigSha);
      // An upload, and the server's trailers (curl writes them after the head with -D).
      const bodyFile = join(work, 'body.json');
      const head = await exec('client', [
        ...curl,
        '-D',
        '-',
        '-o',
        bodyFile,
        '--data-binary',
        `@${join(work, 'upload.bin')}`,
        'http://h2-node:8080/sha256',
      ]);
      assert.deepEqual(JSON.parse(await readFile(bodyFile, 'utf8')), { bytes: 3 * 1024 * 1024, sha256: uploadSha });
      assert.match(
        head,
        new RegExp(`\\r?\\n\\r?\\nx-body-bytes: 3145728\\r?\\nx-body-sha256: ${uploadSha}`),
        'trailers after the head',
      );
      // The client gives up (curl's exit 28): the server sees its stream end.
      const stats = async () =>
        (JSON.parse(await exec('client', [...curl, 'http://h2-node:8080/stats'])) as { cancelled: number }).cancelled;
      const cancelledBefore = await stats();
      await exec(
        'client',
        ['curl', '-sS', '--http2-prior-knowledge', '--max-time', '1', 'http://h2-node:8080/slow'],
        28,
      );
      let cancelled = 0;
      for (let i = 0; i < 50 && cancelled === 0; i++) {
        cancelled = (await stats()) - cancelledBefore;
        if (cancelled === 0) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(cancelled, 1, 'the server saw the abandoned stream end');
      // The server resets mid-answer: curl reports an HTTP/2 stream error (exit 92), not a clean end.
      await exec('client', [...curl, 'http://h2-node:8080/reset'], 92);
    });

    await t.test('HTTP/2: nghttp (concurrent streams, uploads, trailers, a reset)', async () => {
      const many = nghttpStreams(
        await exec('client', ['nghttp', '-v', '-n', '-m', '100', 'http://h2-node:8080/hello']),
      );
      assert.equal(many.length, 100);
      for (const s of many) assert.deepEqual([s.status, s.bytes, s.ended], ['200', 9, true], JSON.stringify(s));
      const bigs = nghttpStreams(
        await exec('client', ['nghttp', '-v', '-n', '-m', '4', 'http://nghttpd:8081/big.bin']),
      );
      assert.equal(bigs.length, 4);
      for (const s of bigs) assert.deepEqual([s.status, s.bytes, s.ended], ['200', BIG, true], JSON.stringify(s));
      const upload = await exec('client', [
        'nghttp',
        '-v',
        '-d',
        join(work, 'upload.bin'),
        'http://h2-node:8080/sha256',
      ]);
      assert.match(upload, new RegExp(`x-body-sha256: ${uploadSha}`));
      assert.match(upload, /x-body-bytes: 3145728/);
      const reset = await exec('client', ['nghttp', '-v', 'http://h2-node:8080/reset'], undefined);
      assert.match(reset, /recv RST_STREAM frame[^\n]*\n[^\n]*error_code=INTERNAL_ERROR/, reset);
    });

    await t.test('HTTP/2: h2load, 10,000 requests to each server and 1,000 uploads of 64 kB, none failed', async () => {
      const load = async (args: readonly string[]) => {
        const out = await exec('client', ['h2load', ...args]);
        const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
          out,
        );
        assert.ok(m, out);
        return {
          out,
          total: Number(m[1]),
          succeeded: Number(m[4]),
          failed: Number(m[5]),
          errored: Number(m[6]),
          twoxx: Number(/status codes: (\d+) 2xx/.exec(out)?.[1]),
        };
      };
      for (const url of ['http://h2-node:8080/hello', 'http://nghttpd:8081/index.html']) {
        const r = await load(['-n', '10000', '-c', '4', '-m', '16', url]);
        assert.deepEqual([r.succeeded, r.failed, r.errored, r.twoxx], [10000, 0, 0, 10000], r.out);
        console.log(`interop h2load ${url}: ${r.succeeded} of ${r.total} succeeded`);
      }
      const up = await load([
        '-n',
        '1000',
        '-c',
        '2',
        '-m',
        '8',
        '-d',
        join(work, 'small.bin'),
        'http://h2-node:8080/sha256',
      ]);
      assert.deepEqual([up.succeeded, up.failed, up.errored], [1000, 0, 0], up.out);
    });
  },
);
