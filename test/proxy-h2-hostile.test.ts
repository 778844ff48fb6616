// Hostile HTTP/2 peers against a real running proxy on the own engine (its own
// process, so that its memory can be read): crafted frames on the outbound side (h2c) and, for a few
// cases, on the inbound side through mesh TLS with a real client identity. For each case: the answer RFC
// 9113 gives (RST_STREAM or GOAWAY with its code), the proxy stays up with its RSS within a generous
// bound, curl (HTTP/2 prior knowledge) keeps getting its answers while the attack goes on, and
// h2_protocol_errors_total counts the case by its kind. No root needed: everything is on loopback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TLSSocket } from 'node:tls';
import type { SpiffeId } from '../src/api/identity.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { Certifier } from '../src/control/identity/certify.js';
import { addIdentityService } from '../src/control/identity/service.js';
import { LocalTokenIssuer } from '../src/control/identity/tokens.js';
import { LocalStore } from '../src/control/store/local/local.js';
import { H2ErrorCode } from '../src/proxy/http2/wire/errors.js';
import {
  dataFrameHeader,
  Flag,
  frame,
  FRAME_HEADER_SIZE,
  FrameType,
  headersFrames,
  pingFrame,
  priorityFrame,
  rstStreamFrame,
  SettingId,
  settingsFrame,
  windowUpdateFrame,
} from '../src/proxy/http2/wire/frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from '../src/proxy/http2/wire/hpack.js';
import { RawPeer, type RawFrame } from '../src/proxy/http2/wire/testkit.js';
import { ProxyIdentity } from '../src/proxy/identity/identity.js';
import { MESH_ALPN } from '../src/proxy/tls/alpn.js';
import { connectMeshTls } from '../src/proxy/tls/client.js';
import { controlLog, startTestControlPlane } from './control-plane.js';
import { freePort, listen, waitFor } from './helpers.js';
import { sumMetric } from './metrics-text.js';

const TD = 'cluster.local';
const API_ID = `spiffe://${TD}/ns/default/sa/api` as SpiffeId;
const WEB_ID = `spiffe://${TD}/ns/default/sa/web` as SpiffeId;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** The proxy's idle timeout, ms: also how long DATA may stall before the stream or connection goes. */
const STALL_MS = 2000;
/** How much the proxy's RSS may grow over its level before the first attack (a bound, not a figure). */
const RSS_GROWTH_BOUND_MB = 128;
const BIG = 1 << 20;

// ---- the fixture: an h2c app, a control plane with the identity service, the proxy process ----------

interface Fixture {
  proxy: ChildProcess;
  pid: number;
  outbound: number;
  inbound: number;
  admin: number;
  output: string[];
  attacker: ProxyIdentity;
  baselineRssMb: number;
  stop(): Promise<void>;
}

let fx: Fixture;

/** The app behind the proxy. `/`: "ok"; `/big`: 1 MiB; `/hang`: no answer; `/hold`: the body is never
 *  read and no answer comes; `/sink`: reads the body, then answers. */
async function startApp(): Promise<{ port: number; close(): Promise<void> }> {
  const chunk = Buffer.alloc(16384, 0x61);
  // Session memory well above what the cases ask for: node:http2 would otherwise reset the app's own
  // streams with ENHANCE_YOUR_CALM when answers wait for a window the proxy does not give.
  const server = http2.createServer({ maxSessionMemory: 1024 });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const p = headers[':path'];
    if (p === '/hang' || p === '/hold') return;
    if (p === '/big') {
      stream.respond({ ':status': 200, 'content-length': String(BIG) });
      // Written as the stream takes it (backpressure), as an app that streams its answer does.
      let left = BIG / chunk.length;
      const more = (): void => {
        while (left > 0 && !stream.destroyed) {
          left--;
          if (left === 0) stream.end(chunk);
          else if (!stream.write(chunk)) return void stream.once('drain', more);
        }
      };
      more();
      return;
    }
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('ok');
    });
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function rssMb(pid: number): Promise<number> {
  return fs.readFile(`/proc/${pid}/status`, 'utf8').then((s) => {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(s);
    if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
    return Number(m[1]) / 1024;
  });
}

async function metrics(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${fx.admin}/metrics`)).text();
}

async function kindCount(direction: string, kind: string): Promise<number> {
  return sumMetric(await metrics(), 'h2_protocol_errors_total', { direction, peer: 'client', kind });
}

before(async () => {
  const app = await startApp();
  const ca = await MeshCa.create({ trustDomain: TD });
  const tokens = await LocalTokenIssuer.create();
  const certifier = new Certifier({ ca, reviewer: tokens.reviewer(() => true) });
  const log = controlLog();
  const cp = await startTestControlPlane({
    store: new LocalStore(),
    ca,
    log,
    services: (server) => addIdentityService(server, { certifier, log }),
  });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outrigger-h2-hostile-'));
  const tokenFile = async (sa: string): Promise<string> => {
    const file = path.join(dir, `${sa}.token`);
    const jwt = await tokens.issue({
      namespace: 'default',
      serviceAccount: sa,
      pod: { name: `${sa}-1`, uid: `u-${sa}` },
    });
    await fs.writeFile(file, jwt, { mode: 0o600 });
    return file;
  };
  const [outbound, inbound, admin] = [await freePort(), await freePort(), await freePort()];
  const args = [
    CLI,
    'proxy',
    ...['--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)],
    ...['--outbound-addr', '127.0.0.1', '--inbound-addr', '127.0.0.1', '--admin-addr', '127.0.0.1'],
    ...['--static-destination', `127.0.0.1:${app.port}`],
    ...['--identity-addr', cp.addr, '--identity-token-file', await tokenFile('api'), '--identity', API_ID],
    // The control plane serves TLS only: the anchor it chains to, and the identity it serves with.
    // (A PEM begins with dashes: the `=` form, or commander takes it for an option.)
    `--trust-anchors=${ca.trustAnchorPem}`,
    ...['--control-identity', cp.identity],
    // A short idle (= stall) timeout for the stall cases.
    ...['--idle-timeout-ms', String(STALL_MS), '--log-level', 'warn'],
  ];
  const proxy = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (d: Buffer) => {
    output.push(d.toString());
    if (output.length > 200) output.shift();
  };
  proxy.stdout?.on('data', keep);
  proxy.stderr?.on('data', keep);
  const attacker = ProxyIdentity.start({
    controlAddr: cp.addr,
    tls: cp.channelTls,
    tokenPath: await tokenFile('web'),
    identity: WEB_ID,
  });
  const stop = async (): Promise<void> => {
    if (proxy.exitCode === null) {
      const exited = new Promise((r) => proxy.once('exit', r));
      proxy.kill('SIGTERM');
      const timer = setTimeout(() => proxy.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await attacker.close();
    await cp.close();
    await app.close();
    await fs.rm(dir, { recursive: true, force: true });
  };
  fx = { proxy, pid: proxy.pid ?? 0, outbound, inbound, admin, output, attacker, baselineRssMb: 0, stop };
  try {
    await waitFor(
      'the proxy ready (its certificate)',
      async () => {
        if (proxy.exitCode !== null) throw new Error(`proxy exited ${proxy.exitCode}:\n${output.join('')}`);
        return (await fetch(`http://127.0.0.1:${admin}/ready`).catch(() => undefined))?.status === 200;
      },
      30_000,
    );
    await attacker.whenReady();
    // Warm up with the clients the cases use, then take the memory the bound is measured from.
    for (let i = 0; i < 20; i++) assert.equal((await curl(outbound)).ok, true);
    const peer = await meshPeer();
    peer.send(requestFrames(new HpackEncoder({ huffman: 'never' }), 1, '/', true));
    assert.ok(await peer.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === 1));
    peer.destroy();
    fx.baselineRssMb = await rssMb(fx.pid);
  } catch (err) {
    await stop();
    throw err;
  }
});

after(async () => {
  await fx?.stop();
});

// ---- the clients: the attacker's raw peer, and a well-behaved curl -----------------------------------

async function plainPeer(settings: [number, number][] = []): Promise<RawPeer> {
  return RawPeer.connect(fx.outbound, settings);
}

/** A raw peer over mesh TLS to the inbound listener, with the `web` identity (ALPN: the mesh's h2). */
async function meshPeer(settings: [number, number][] = []): Promise<RawPeer> {
  const s: TLSSocket = await connectMeshTls({
    identity: fx.attacker,
    serverId: API_ID,
    alpn: MESH_ALPN.h2,
    host: '127.0.0.1',
    port: fx.inbound,
  });
  return RawPeer.over(s, settings);
}

function curl(port: number): Promise<{ ok: boolean; what: string }> {
  return new Promise((resolve) => {
    execFile(
      'curl',
      [
        '-sS',
        '--http2-prior-knowledge',
        '--max-time',
        '10',
        '-w',
        ' %{http_code} %{http_version}',
        `http://127.0.0.1:${port}/`,
      ],
      { timeout: 15_000 },
      (err, stdout, stderr) => {
        const what = `${stdout.trim()} ${stderr.trim()}`.trim();
        resolve({ ok: err === null && stdout === 'ok 200 2', what: err ? `${err.message}: ${what}` : what });
      },
    );
  });
}

/** curl, one request after another until stopped; counts what succeeded and what did not. */
function curlLoop(port: number): { readonly ok: number; stop(): Promise<{ ok: number; failures: string[] }> } {
  let stopped = false;
  const res = { ok: 0, failures: [] as string[] };
  const done = (async () => {
    while (!stopped) {
      const r = await curl(port);
      if (r.ok) res.ok++;
      else res.failures.push(r.what);
    }
  })();
  return {
    get ok() {
      return res.ok;
    },
    stop: async () => {
      stopped = true;
      await done;
      return res;
    },
  };
}

// ---- frames ---------------------------------------------------------------------------------------

const enc = (): HpackEncoder => new HpackEncoder({ huffman: 'never' });

function requestFrames(e: HpackEncoder, id: number, p: string, endStream: boolean, method = 'GET'): Buffer {
  const l = new HeaderList().add(':method', method).add(':scheme', 'http').add(':path', p).add(':authority', 'app');
  return headersFrames(e.encode(l, FRAME_HEADER_SIZE), id, endStream, 16384);
}

const rstOn =
  (id: number) =>
  (f: RawFrame): boolean =>
    f.type === FrameType.RST_STREAM && f.streamId === id;
const headersOn =
  (id: number) =>
  (f: RawFrame): boolean =>
    f.type === FrameType.HEADERS && f.streamId === id;

async function expectGoAway(peer: RawPeer, code: number, what: string): Promise<RawFrame> {
  const g = await peer.waitFor((f) => f.type === FrameType.GOAWAY, 10_000);
  assert.ok(g, `${what}: GOAWAY expected, the socket closed without one`);
  assert.equal(g.payload.readUInt32BE(4), code, `${what}: GOAWAY code`);
  return g;
}

async function expectReset(peer: RawPeer, id: number, code: number, what: string, ms = 10_000): Promise<void> {
  const r = await peer.waitFor(rstOn(id), ms);
  assert.ok(r, `${what}: RST_STREAM on ${id} expected, the socket closed`);
  assert.equal(r.payload.readUInt32BE(0), code, `${what}: RST_STREAM code`);
}

/** The connection still answers: a PING comes back (and no GOAWAY came). */
async function alive(peer: RawPeer, what: string): Promise<void> {
  const data = Buffer.from('alive!!!');
  peer.send(pingFrame(data, false));
  const f = await peer.waitFor(
    (x) => x.type === FrameType.PING && (x.flags & Flag.ACK) !== 0 && x.payload.equals(data),
  );
  assert.ok(f, `${what}: the connection answers a PING`);
  assert.equal(
    peer.frames.find((x) => x.type === FrameType.GOAWAY),
    undefined,
    `${what}: no GOAWAY`,
  );
}

// ---- the cases ------------------------------------------------------------------------------------

type Side = 'outbound' | 'inbound';

interface Case {
  readonly name: string;
  /** h2_protocol_errors_total's kind; null: none is counted (a frame the RFC says to ignore). */
  readonly kind: string | null;
  /** How many the metric counts per round (default 1). */
  readonly perRound?: number;
  /** Peer settings at connect. */
  readonly settings?: [number, number][];
  /** Sends the attack on a fresh connection and checks the answer. */
  run(peer: RawPeer, e: HpackEncoder, side: Side): Promise<void>;
}

/** A field block that decodes past the proxy's 64 KiB header list limit from about 4.3 kB: one 4 kB value
 *  added to the table, then referenced 100 times. */
function hpackBomb(id: number): Buffer {
  const base = enc().encode(
    new HeaderList().add(':method', 'GET').add(':scheme', 'http').add(':path', '/').add(':authority', 'app'),
  );
  const big = [0x40, 0x05, ...Buffer.from('x-big'), 0x7f, 0xa1, 0x1e, ...Buffer.alloc(4000, 0x61)];
  const block = Buffer.concat([Buffer.alloc(FRAME_HEADER_SIZE), base, Buffer.from(big), Buffer.alloc(100, 0x80 | 62)]);
  return headersFrames(block, id, true, 16384);
}

const CASES: Record<string, Case> = {
  rapidReset: {
    name: 'rapid reset (CVE-2023-44487): HEADERS + RST_STREAM pairs past 1000/s',
    kind: 'rapid_reset',
    async run(peer, e) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 1500; i++) {
        const id = 2 * i + 1;
        parts.push(requestFrames(e, id, '/hang', true), rstStreamFrame(id, H2ErrorCode.CANCEL));
      }
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'rapid reset');
    },
  },
  continuation: {
    name: 'CONTINUATION flood (CVE-2024-27316): a field block that never ends',
    kind: 'continuation_flood',
    async run(peer, e) {
      const head = requestFrames(e, 1, '/', true);
      head[4] = (head[4] as number) & ~Flag.END_HEADERS;
      const parts = [head];
      for (let i = 0; i < 300; i++) parts.push(frame(FrameType.CONTINUATION, 0, 1, Buffer.alloc(1024, 0x41)));
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'continuation flood');
    },
  },
  ping: {
    name: 'ping flood (CVE-2019-9512): PING frames past 100/s',
    kind: 'ping_flood',
    async run(peer) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 1000; i++) parts.push(pingFrame(Buffer.alloc(8, i), false));
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'ping flood');
      const acks = peer.frames.filter((f) => f.type === FrameType.PING).length;
      assert.ok(acks <= 101, `ping flood: ${acks} answers (bound 100 a second)`);
    },
  },
  settings: {
    name: 'settings flood (CVE-2019-9515): SETTINGS frames past 100/s',
    kind: 'settings_flood',
    async run(peer) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 1000; i++) parts.push(settingsFrame([[SettingId.ENABLE_PUSH, 0]]));
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'settings flood');
    },
  },
  empty: {
    name: 'empty-frame flood (CVE-2019-9518): empty DATA frames without END_STREAM',
    kind: 'empty_frame_flood',
    async run(peer, e) {
      const parts = [requestFrames(e, 1, '/sink', false, 'POST')];
      for (let i = 0; i < 500; i++) parts.push(dataFrameHeader(1, 0, false));
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'empty frames');
    },
  },
  resetFlood: {
    name: 'reset flood (CVE-2019-9514): frames that each make the proxy reset a stream',
    kind: 'reset_flood',
    async run(peer) {
      // A stream that depends on itself is a stream error (RFC 9113 section 5.3.1): one RST_STREAM each.
      const parts: Buffer[] = [];
      for (let i = 0; i < 2000; i++) parts.push(priorityFrame(2 * i + 1, 2 * i + 1, false, 16));
      peer.send(...parts);
      await expectGoAway(peer, H2ErrorCode.ENHANCE_YOUR_CALM, 'reset flood');
      const rsts = peer.frames.filter((f) => f.type === FrameType.RST_STREAM).length;
      assert.ok(rsts <= 1000, `reset flood: ${rsts} resets sent (bound 1000 a second)`);
    },
  },
  zeroWindow: {
    name: 'zero-window flood (CVE-2019-9511/9517): 20 streams of 1 MiB answers, no window ever',
    kind: 'zero_window',
    perRound: 20,
    settings: [[SettingId.INITIAL_WINDOW_SIZE, 0]],
    async run(peer, e) {
      const parts: Buffer[] = [];
      for (let i = 0; i < 20; i++) parts.push(requestFrames(e, 2 * i + 1, '/big', true));
      peer.send(...parts);
      // The heads come (HEADERS need no window); then, after the stall timeout, each stream is reset.
      for (let i = 0; i < 20; i++) await expectReset(peer, 2 * i + 1, H2ErrorCode.CANCEL, 'zero window', 30_000);
      await alive(peer, 'zero window');
    },
  },
  slowRead: {
    name: 'slow read (CVE-2019-9517): large windows, 32 MiB asked for, the socket never read',
    kind: 'slow_read',
    settings: [[SettingId.INITIAL_WINDOW_SIZE, 0x7fffffff]],
    async run(peer, e, side) {
      peer.send(windowUpdateFrame(0, 0x7fffffff - 65535));
      await alive(peer, 'slow read');
      peer.socket.pause();
      const parts: Buffer[] = [];
      for (let i = 0; i < 32; i++) parts.push(requestFrames(e, 2 * i + 1, '/big', true));
      peer.send(...parts);
      // Its GOAWAY sits unread behind the DATA: the metric says the proxy gave up on the connection.
      const before = await kindCount(side, 'slow_read');
      await waitFor('the proxy ends the connection', async () => (await kindCount(side, 'slow_read')) > before);
    },
  },
  hpackBomb: {
    name: 'HPACK bomb: a 4.3 kB field block that decodes to 400 kB',
    kind: 'header_list_too_large',
    async run(peer) {
      peer.send(hpackBomb(1));
      const h = await peer.waitFor(headersOn(1));
      assert.ok(h, 'hpack bomb: an answer on the stream');
      assert.equal(new HpackDecoder().decode(h.payload).values[0], '431', 'hpack bomb: 431');
      await alive(peer, 'hpack bomb');
    },
  },
  oversized: {
    name: 'oversized frame: a PING of 20000 bytes over SETTINGS_MAX_FRAME_SIZE',
    kind: 'frame_size',
    async run(peer) {
      peer.send(frame(FrameType.PING, 0, 0, Buffer.alloc(20000)));
      await expectGoAway(peer, H2ErrorCode.FRAME_SIZE_ERROR, 'oversized frame');
    },
  },
  badPadding: {
    name: 'invalid frame: DATA whose padding is longer than its payload',
    kind: 'protocol',
    async run(peer, e) {
      peer.send(
        requestFrames(e, 1, '/sink', false, 'POST'),
        frame(FrameType.DATA, Flag.PADDED, 1, Buffer.from([9, 1, 2])),
      );
      await expectGoAway(peer, H2ErrorCode.PROTOCOL_ERROR, 'bad padding');
    },
  },
  stream0: {
    name: 'invalid frame: DATA on stream 0',
    kind: 'protocol',
    async run(peer) {
      peer.send(dataFrameHeader(0, 4, false), Buffer.alloc(4));
      await expectGoAway(peer, H2ErrorCode.PROTOCOL_ERROR, 'data on stream 0');
    },
  },
  settingsOnStream: {
    name: 'invalid frame: SETTINGS on a stream',
    kind: 'protocol',
    async run(peer) {
      peer.send(frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0)));
      await expectGoAway(peer, H2ErrorCode.PROTOCOL_ERROR, 'settings on stream 1');
    },
  },
  unknownType: {
    name: 'a frame of an unknown type is ignored (RFC 9113 section 5.5), the request after it served',
    kind: null,
    async run(peer, e) {
      peer.send(frame(0xfa, 0xff, 0, Buffer.alloc(64, 1)), frame(0xfb, 0, 1, Buffer.alloc(8)));
      peer.send(requestFrames(e, 1, '/', true));
      const h = await peer.waitFor(headersOn(1));
      assert.ok(h, 'unknown type: the request is answered');
      assert.equal(new HpackDecoder().decode(h.payload).values[0], '200');
      await alive(peer, 'unknown type');
    },
  },
  backwards: {
    name: 'stream ID going backwards: HEADERS on 3 after 5',
    kind: 'stream_state',
    async run(peer, e) {
      peer.send(requestFrames(e, 5, '/', true));
      assert.ok(await peer.waitFor(headersOn(5)), 'backwards: stream 5 answered');
      peer.send(requestFrames(e, 3, '/', true));
      const g = await expectGoAway(peer, H2ErrorCode.PROTOCOL_ERROR, 'stream id backwards');
      assert.equal(g.payload.readUInt32BE(0), 5, 'backwards: GOAWAY names 5 as the last stream');
    },
  },
  pastWindow: {
    name: 'DATA past the stream window: 480 kB to an upstream that reads nothing, WINDOW_UPDATEs ignored',
    kind: 'flow_control',
    async run(peer, e) {
      const parts = [requestFrames(e, 1, '/hold', false, 'POST')];
      for (let i = 0; i < 30; i++) parts.push(dataFrameHeader(1, 16384, false), Buffer.alloc(16384, 0x62));
      peer.send(...parts);
      await expectReset(peer, 1, H2ErrorCode.FLOW_CONTROL_ERROR, 'data past the window');
      await alive(peer, 'data past the window');
    },
  },
  headersAfterEnd: {
    name: 'HEADERS after END_STREAM on the same stream',
    kind: 'stream_state',
    async run(peer, e) {
      peer.send(requestFrames(e, 1, '/hang', true));
      await alive(peer, 'headers after end_stream (first head)');
      peer.send(requestFrames(e, 1, '/hang', true));
      await expectReset(peer, 1, H2ErrorCode.STREAM_CLOSED, 'headers after end_stream');
      await alive(peer, 'headers after end_stream');
    },
  },
};

/**
 * Runs `c` on fresh connections (to `side`) while curl asks the proxy's outbound listener for `/` one
 * request after another, until at least 3 of curl's requests finished during the attack (at most
 * `maxRounds` rounds, at least one): every curl request must succeed, at least one of them during the
 * attack; the kind must be counted once per round (perRound), the proxy alive and its RSS bounded.
 */
async function attack(c: Case, side: Side, maxRounds = 30): Promise<void> {
  const before = c.kind === null ? 0 : await kindCount(side, c.kind);
  const load = curlLoop(fx.outbound);
  let rounds = 0;
  try {
    do {
      const peer = side === 'outbound' ? await plainPeer(c.settings) : await meshPeer(c.settings);
      try {
        await c.run(peer, enc(), side);
      } finally {
        peer.destroy();
      }
      rounds++;
    } while (load.ok < 3 && rounds < maxRounds);
  } finally {
    const res = await load.stop();
    assert.deepEqual(res.failures, [], `${c.name}: curl requests failed during the attack`);
    assert.ok(res.ok >= 1, `${c.name}: no curl request finished during ${rounds} rounds of the attack`);
  }
  if (c.kind !== null) {
    const kind = c.kind;
    const want = before + rounds * (c.perRound ?? 1);
    await waitFor(`h2_protocol_errors_total{direction="${side}",kind="${kind}"} >= ${want}`, async () => {
      return (await kindCount(side, kind)) >= want;
    });
  }
  assert.equal(fx.proxy.exitCode, null, `the proxy exited:\n${fx.output.join('')}`);
  assert.equal((await fetch(`http://127.0.0.1:${fx.admin}/ready`)).status, 200);
  const rss = await rssMb(fx.pid);
  assert.ok(
    rss <= fx.baselineRssMb + RSS_GROWTH_BOUND_MB,
    `${c.name}: proxy RSS ${rss.toFixed(1)} MB, more than ${RSS_GROWTH_BOUND_MB} MB over ${fx.baselineRssMb.toFixed(1)} MB`,
  );
}

for (const c of Object.values(CASES)) {
  void test(`outbound h2c: ${c.name}`, () => attack(c, 'outbound'));
}

for (const key of ['rapidReset', 'continuation', 'ping', 'hpackBomb', 'headersAfterEnd', 'zeroWindow'] as const) {
  const c = CASES[key] as Case;
  void test(`inbound mesh TLS: ${c.name}`, () => attack(c, 'inbound'));
}

void test('the counters of the cases are in /metrics with their labels, and the connection figures beside them', async () => {
  const text = await metrics();
  for (const kind of ['rapid_reset', 'continuation_flood', 'ping_flood', 'zero_window']) {
    assert.ok(sumMetric(text, 'h2_protocol_errors_total', { direction: 'inbound', peer: 'client', kind }) >= 1, kind);
  }
  const out = { direction: 'outbound', peer: 'client' };
  assert.ok(sumMetric(text, 'h2_goaways_sent_total', { ...out, code: 'ENHANCE_YOUR_CALM' }) >= 6);
  assert.ok(sumMetric(text, 'h2_resets_sent_total', { ...out, code: 'CANCEL' }) >= 20);
  assert.ok(sumMetric(text, 'h2_resets_received_total', { ...out, code: 'CANCEL' }) >= 1000);
  assert.ok(sumMetric(text, 'h2_streams_total', { direction: 'outbound', peer: 'server' }) >= 1);
  assert.ok(sumMetric(text, 'h2_connections_total', out) >= Object.keys(CASES).length);
  // Curl's requests and the app's answers went through the own engine: its upstream connection is open.
  assert.ok(sumMetric(text, 'h2_open_connections', { direction: 'outbound', peer: 'server' }) >= 1);
});
