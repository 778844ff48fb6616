// The Dockerfile, checked without docker (there is no docker daemon on the machines that run these
// tests): every path it copies exists (in the build context, or, for the runtime stage, in a built
// tree like the build stage's), none is excluded by .dockerignore, every .proto read at run time is
// copied, the entry point exists and runs the subcommands the manifests name, and it runs as uid 2102.
// The image itself is not built here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { installObjects } from '../src/kube/install.js';
import { injectObject } from '../src/kube/inject.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const lines = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

interface Copy {
  readonly from?: string;
  readonly sources: string[];
  readonly dest: string;
  readonly stage: number;
}

function copies(): Copy[] {
  let stage = -1;
  const out: Copy[] = [];
  for (const l of lines) {
    if (/^FROM /i.test(l)) stage++;
    if (!/^COPY /i.test(l)) continue;
    const words = l.split(/\s+/).slice(1);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    out.push({
      ...(from !== undefined ? { from } : {}),
      sources: paths.slice(0, -1),
      dest: paths.at(-1) as string,
      stage,
    });
  }
  return out;
}

void test('Dockerfile: two stages, node:24-slim, non-root (uid 2102), iptables in the runtime stage', () => {
  const froms = lines.filter((l) => /^FROM /i.test(l));
  assert.equal(froms.length, 2);
  for (const f of froms) assert.match(f, /^FROM node:24-slim/);
  const runtime = lines.slice(lines.indexOf(froms[1] as string));
  assert.ok(runtime.some((l) => /^USER 2102(:2102)?$/.test(l)));
  assert.ok(runtime.some((l) => /apt-get install .*\biptables\b/.test(l)));
  assert.ok(!runtime.some((l) => /\b(g\+\+|make|python3)\b/.test(l)), 'no toolchain in the runtime stage');
});

/** A COPY source with Docker's wildcards (`*`, `?`) in its last segment, expanded against `root`
 *  (as Docker expands it against the build context or the stage); a plain path stays itself. */
function expand(root: string, path: string): string[] {
  const slash = path.lastIndexOf('/');
  const dir = path.slice(0, slash + 1);
  const base = path.slice(slash + 1);
  if (!/[*?]/.test(base)) return [path];
  const re = new RegExp(
    `^${base
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  return existsSync(join(root, dir))
    ? readdirSync(join(root, dir))
        .filter((f) => re.test(f))
        .map((f) => `${dir}${f}`)
    : [];
}

void test('Dockerfile: what the build stage copies is in the context and not ignored; what the runtime stage copies exists after a build', () => {
  const ignored = (p: string) => ignore.some((i) => p === i || p.startsWith(`${i}/`));
  for (const c of copies()) {
    for (const src of c.sources) {
      if (c.from === undefined) {
        assert.ok(existsSync(join(ROOT, src)), `build context: ${src}`);
        assert.ok(!ignored(src), `${src} is in .dockerignore`);
      } else {
        // /src is the build stage's WORKDIR: the same tree as this checkout after `npm ci`. A wildcard
        // that matches nothing fails the build.
        const rel = src.replace(/^\/src\//, '');
        const found = expand(ROOT, rel);
        assert.ok(found.length > 0 && found.every((f) => existsSync(join(ROOT, f))), `built tree: ${rel}`);
        if (found.length > 1 || found[0] !== rel)
          assert.ok(c.dest.endsWith('/'), `${src}: several files need a directory destination ending in /`);
      }
    }
  }
  // Wildcards expanded: `src/api/*.proto` copies every .proto there is, now and later.
  const runtimeSources = copies()
    .filter((c) => c.from !== undefined)
    .flatMap((c) => c.sources.flatMap((src) => expand(ROOT, src.replace(/^\/src\//, '')).map((f) => `/src/${f}`)));
  for (const proto of readdirSync(join(ROOT, 'src/api')).filter((f) => f.endsWith('.proto'))) {
    assert.ok(
      runtimeSources.includes(`/src/src/api/${proto}`),
      `${proto} is read at run time and must be in the image`,
    );
  }
  for (const needed of [
    '/src/node_modules',
    '/src/dist/src',
    '/src/bin',
    '/src/package.json',
    '/src/native/build/Release/origdst.node',
  ])
    assert.ok(runtimeSources.includes(needed), needed);
});

void test('Dockerfile: the entry point runs the subcommands the manifests and the injector name', async () => {
  const entry = lines.find((l) => l.startsWith('ENTRYPOINT')) ?? '';
  const argv = JSON.parse(entry.slice('ENTRYPOINT'.length)) as string[];
  assert.equal(argv[0], 'node');
  const bin = (argv[1] as string).replace(/^\/app\//, '');
  assert.ok(existsSync(join(ROOT, bin)));
  const objs = await installObjects({
    namespace: 'outrigger',
    trustDomain: 'cluster.local',
    identityLifetimeSeconds: 3600,
    image: 'x',
    replicas: 1,
    failurePolicy: 'Ignore',
  });
  const deploy = objs.find((o) => o.kind === 'Deployment') as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: {}, spec: { containers: [{ name: 'a', image: 'a' }] } };
  const { ops } = injectObject(
    pod,
    {},
    {
      image: 'x',
      controlAddr: 'c:1',
      trustDomain: 'cluster.local',
      controlIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
    },
    'offline',
  );
  const init = (ops.find((o) => o.path === '/spec/initContainers')?.value ?? []) as { args: string[] }[];
  const subcommands = [deploy.spec.template.spec.containers[0].args[0], ...init.map((c) => c.args[0])];
  assert.deepEqual(subcommands, ['control-plane', 'proxy-init', 'proxy']);
  const run = promisify(execFile);
  for (const sub of subcommands) {
    const { stdout } = await run(process.execPath, [join(ROOT, bin), sub, '--help'], { cwd: ROOT });
    assert.match(stdout, new RegExp(`Usage: outrigger ${sub}`));
  }
  // The init container's arguments are accepted as given (dry run: print the rules, write nothing).
  const { stdout } = await run(process.execPath, [join(ROOT, bin), ...(init[0]?.args ?? []), '--dry-run'], {
    cwd: ROOT,
  });
  assert.match(stdout, /-A OUTR-OUTBOUND -m owner --uid-owner 2102 -j RETURN/);
});
