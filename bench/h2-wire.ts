// Micro-benchmark of the HTTP/2 wire engine's codecs (src/proxy/http2/wire): HPACK decode and encode of a
// typical gRPC request head, and frames read per second from a buffer of many small frames. Prints ns per
// operation; not one of `npm run bench`'s scenarios. Run: node dist/bench/h2-wire.js [--n 200000]
import { cpus, loadavg } from 'node:os';
import {
  dataFrameHeader,
  dataPayload,
  headersFragment,
  pingData,
  windowIncrement,
  frame,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  headersFrames,
  settingsFrame,
  windowUpdateFrame,
} from '../src/proxy/http2/wire/frames.js';
import { HeaderList, HpackDecoder, HpackEncoder } from '../src/proxy/http2/wire/hpack.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from '../src/proxy/http2/wire/huffman.js';
import { columns } from './table.js';

const arg = process.argv.indexOf('--n');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 200_000;

const grpcRequest = new HeaderList()
  .add(':method', 'POST')
  .add(':scheme', 'http')
  .add(':path', '/pkg.Service/Method')
  .add(':authority', 'backend.default.svc.cluster.local:8080')
  .add('content-type', 'application/grpc')
  .add('te', 'trailers')
  .add('grpc-timeout', '999m')
  .add('grpc-accept-encoding', 'identity,deflate,gzip')
  .add('user-agent', 'grpc-node-js/1.14.7');

/** Rounds per figure: the best one is kept, since other processes on the machine only ever add time. */
const ROUNDS = 5;

/** Runs `fn` n times (after a warm-up) in ROUNDS rounds and returns the best round's ns per call. */
function time(n: number, fn: () => void): number {
  for (let i = 0; i < Math.min(n, 10_000); i++) fn();
  const per = Math.max(1, Math.floor(n / ROUNDS));
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < per; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / per);
  }
  return best;
}

let sink = 0;
const rows: string[][] = [];
const row = (what: string, n: number, ns: number, extra = '') =>
  rows.push([what, String(n), ns.toFixed(0), (1e9 / ns / 1e6).toFixed(2), extra]);

// Warm tables: after the first request on a connection every field of the next one is an index.
const enc = new HpackEncoder();
const dec = new HpackDecoder();
const first = enc.encode(grpcRequest, FRAME_HEADER_SIZE);
dec.decode(first.subarray(FRAME_HEADER_SIZE));
const warm = enc.encode(grpcRequest);
const warmNote = `${warm.length} B block`;
const encodeWarm = () => (sink += enc.encode(grpcRequest, FRAME_HEADER_SIZE).length);
row('hpack encode, warm table', N, time(N, encodeWarm), warmNote);
row(
  'hpack decode, warm table',
  N,
  time(N, () => (sink += dec.decode(warm).length)),
  warmNote,
);
// What forwarding a request head costs: decode from one peer, encode for the other (own tables each).
const next = new HpackEncoder();
next.encode(grpcRequest);
const reencode = () => (sink += next.encode(dec.decode(warm), FRAME_HEADER_SIZE).length);
row('hpack re-encode (decode + encode), warm', N, time(N, reencode));

// Cold: the first request of a connection, all literals with Huffman strings, tables filled on the way.
const coldBlock = new HpackEncoder().encode(grpcRequest);
const nc = Math.max(1, Math.floor(N / 5));
const coldNote = `${coldBlock.length} B block`;
const encodeCold = () => (sink += new HpackEncoder().encode(grpcRequest).length);
const decodeCold = () => (sink += new HpackDecoder().decode(coldBlock).length);
row('hpack encode, cold (new encoder)', nc, time(nc, encodeCold), coldNote);
row('hpack decode, cold (new decoder)', nc, time(nc, decodeCold), coldNote);

// Huffman decoding alone, per input byte: a 120-byte string of typical header characters.
const text = 'backend.default.svc.cluster.local:8080/pkg.Service/Method?x=1 grpc-node-js/1.14.7 application/grpc+proto';
const coded = Buffer.alloc(huffmanEncodedLength(text));
huffmanEncode(text, coded, 0);
const scratch = Buffer.alloc(text.length * 2);
const huff = () => (sink += huffmanDecode(coded, 0, coded.length, scratch, 0));
row('huffman decode, per input byte', N * coded.length, time(N, huff) / coded.length, `${coded.length} B string`);

// Frames: a gRPC-like mix (HEADERS, DATA of 64 bytes, WINDOW_UPDATE), read from one buffer and from
// 16 KiB socket-sized chunks (where frames are split across chunks).
const parts: Buffer[] = [settingsFrame([])];
const body = Buffer.alloc(64, 1);
let frames = 1;
for (let i = 0; parts.length < 30_000; i++) {
  const id = 2 * i + 1;
  parts.push(headersFrames(Buffer.concat([Buffer.alloc(FRAME_HEADER_SIZE), warm]), id, false, 16384));
  parts.push(dataFrameHeader(id, body.length, true), body);
  parts.push(windowUpdateFrame(0, 64));
  parts.push(frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
  frames += 4;
}
const stream = Buffer.concat(parts);
const chunks: Buffer[] = [];
for (let i = 0; i < stream.length; i += 16384) chunks.push(stream.subarray(i, i + 16384));
const reps = Math.max(1, Math.round(N / frames) * 20);
// Each frame gets what a connection would do with it: a view of DATA and HEADERS payloads (to forward
// and to decode), the increment of WINDOW_UPDATE, the 8 bytes of PING.
const readAll = (cs: Buffer[]) => () => {
  const r = new FrameReader();
  for (const c of cs) {
    r.push(c);
    while (r.next()) {
      switch (r.type) {
        case FrameType.DATA:
          sink += dataPayload(r).length;
          break;
        case FrameType.HEADERS:
          sink += headersFragment(r).length;
          break;
        case FrameType.WINDOW_UPDATE:
          sink += windowIncrement(r);
          break;
        case FrameType.PING:
          sink += pingData(r).length;
          break;
        default:
          sink += r.length;
      }
    }
  }
};
const mb = `${(stream.length / 1048576).toFixed(1)} MB, ${frames} frames`;
row('frame read, one buffer', reps * frames, time(reps, readAll([stream])) / frames, mb);
row('frame read, 16 KiB chunks', reps * frames, time(reps, readAll(chunks)) / frames, mb);

const load = loadavg()
  .map((l) => l.toFixed(1))
  .join(' ');
console.log(`outrigger h2 wire micro-benchmark: node ${process.version}, ${cpus().length} cpus, load ${load}`);
console.log(`best of ${ROUNDS} rounds per figure, ${new Date().toISOString()}`);
console.log(columns(['operation', 'n', 'ns/op', 'Mops/s', 'note'], rows, 1).join('\n'));
if (sink === -1) console.log(sink);
