// Differential tests against Node's own HTTP/2 (nghttp2) on loopback: its encoder's blocks decoded by our
// HpackDecoder off the raw socket, and our encoder's blocks decoded by its server, including dynamic table
// references across requests, table size updates, CONTINUATION and never-indexed fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import {
  continuationFragment,
  FieldBlockAssembler,
  Flag,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  headersFragment,
  headersFrames,
  parseSettings,
  PREFACE,
  SettingId,
  Settings,
  settingsAckFrame,
  settingsFrame,
} from './frames.js';
import { HeaderList, HpackDecoder, HpackEncoder, NEVER_INDEXED } from './hpack.js';

/** mulberry32, as in hpack.test.ts: a seeded generator so that a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Field lists a client could send: regular names of ours, visible ASCII values, some long, some repeated. */
function randomRequests(seed: number, count: number): [string, string][][] {
  const r = rng(seed);
  const names = ['x-a', 'x-b', 'x-c', 'x-request-id', 'user-agent', 'content-type', 'accept', 'grpc-timeout', 'x-long'];
  const out: [string, string][][] = [];
  for (let i = 0; i < count; i++) {
    const fields: [string, string][] = [];
    for (const name of names) {
      if (r() < 0.4) continue;
      const len = name === 'x-long' ? 20000 : Math.floor(r() * 30);
      let v = '';
      for (let j = 0; j < len; j++) v += String.fromCharCode(0x21 + Math.floor(r() * 94));
      // Repeat values across requests often, so that the dynamic table is used.
      fields.push([name, r() < 0.5 ? `v${Math.floor(r() * 4)}` : v]);
    }
    out.push(fields);
  }
  return out;
}

void test('node:http2 client to our frame reader and HPACK decoder, with a 256-byte table we ask for', async () => {
  const requests = randomRequests(1, 40);
  const got: HeaderList[] = [];
  let continuations = 0;
  const decoder = new HpackDecoder();
  const server = net.createServer((socket) => {
    const reader = new FrameReader({ expectPreface: true });
    const assembler = new FieldBlockAssembler(1 << 20);
    const settings = new Settings();
    // A smaller table than the default: nghttp2 must open its next block with a size update.
    socket.write(settingsFrame([[SettingId.HEADER_TABLE_SIZE, 256]]));
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      while (reader.next()) {
        let block: Buffer | null = null;
        if (reader.type === FrameType.SETTINGS) {
          if (parseSettings(reader, settings, false)) decoder.setMaxTableSize(256);
          else socket.write(settingsAckFrame());
        } else if (reader.type === FrameType.HEADERS) {
          block = assembler.start(headersFragment(reader), (reader.flags & Flag.END_HEADERS) !== 0);
        } else if (reader.type === FrameType.CONTINUATION) {
          continuations++;
          block = assembler.add(continuationFragment(reader), (reader.flags & Flag.END_HEADERS) !== 0);
        }
        if (block !== null) got.push(decoder.decode(block));
      }
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  await once(client, 'remoteSettings');
  // Wait until our SETTINGS are acknowledged so that every request below is encoded for the small table.
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const [i, fields] of requests.entries()) {
    const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': `/pkg.Service/M${i % 3}` };
    for (const [n, v] of fields) headers[n] = v;
    headers['authorization'] = `Bearer ${i % 2}`;
    (headers as Record<symbol, unknown>)[http2.sensitiveHeaders] = ['x-a'];
    const req = client.request(headers, { endStream: true });
    req.on('error', () => {});
  }
  const deadline = Date.now() + 5000;
  while (got.length < requests.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  client.destroy();
  server.close();
  assert.equal(got.length, requests.length);
  assert.ok(decoder.tableMaxSize <= 256, `nghttp2 did not shrink its table: ${decoder.tableMaxSize}`);
  assert.ok(continuations > 0, 'no long field block came in several frames');
  requests.forEach((fields, i) => {
    const list = got[i]!;
    const byName = new Map(list.names.map((n, j) => [n, list.values[j]]));
    assert.equal(byName.get(':method'), 'POST');
    assert.equal(byName.get(':path'), `/pkg.Service/M${i % 3}`);
    assert.equal(byName.get(':authority'), `127.0.0.1:${port}`);
    for (const [n, v] of fields) assert.equal(byName.get(n), v, `request ${i} ${n}`);
    // nghttp2 sends authorization, and what we marked sensitive, as never-indexed literals.
    list.names.forEach((n, j) => {
      if (n === 'authorization' || n === 'x-a') assert.equal(list.flags[j], NEVER_INDEXED, `request ${i} ${n}`);
    });
  });
});

void test('our HPACK encoder and frame writers to node:http2 server, with CONTINUATION and never-indexed', async () => {
  const requests = randomRequests(2, 40);
  const seen: { headers: http2.IncomingHttpHeaders; sensitive: string[] }[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const marked = (headers as Record<symbol, string[] | undefined>)[http2.sensitiveHeaders];
    const sensitive = marked ?? [];
    seen.push({ headers, sensitive });
    stream.respond({ ':status': 200 });
    stream.end();
  });
  server.on('sessionError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const reader = new FrameReader();
  const responses: HeaderList[] = [];
  const respDecoder = new HpackDecoder();
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    while (reader.next()) {
      if (reader.type === FrameType.SETTINGS && (reader.flags & Flag.ACK) === 0) socket.write(settingsAckFrame());
      // Responses are single-frame blocks here: :status 200 and a date.
      if (reader.type === FrameType.HEADERS) responses.push(respDecoder.decode(headersFragment(reader)));
    }
  });
  socket.on('error', () => {});
  const encoder = new HpackEncoder({ maxTableSize: 1024 });
  let continued = 0;
  // As if the server had said SETTINGS_HEADER_TABLE_SIZE 4096 twice with a 0 in between: two updates.
  encoder.setPeerMaxTableSize(0);
  encoder.setPeerMaxTableSize(4096);
  socket.write(Buffer.concat([PREFACE, settingsFrame([])]));
  requests.forEach((fields, i) => {
    const list = new HeaderList()
      .add(':method', 'GET')
      .add(':scheme', 'http')
      .add(':path', `/r/${i % 5}`)
      .add(':authority', 'backend:8080');
    for (const [n, v] of fields) list.add(n, v);
    list.add('x-secret', `s${i % 2}`, NEVER_INDEXED);
    list.add('authorization', 'Bearer t');
    const block = encoder.encode(list, FRAME_HEADER_SIZE);
    if (block.length > 16384 + FRAME_HEADER_SIZE) continued++;
    socket.write(headersFrames(block, 2 * i + 1, true, 16384));
  });
  const deadline = Date.now() + 5000;
  while ((seen.length < requests.length || responses.length < requests.length) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  socket.destroy();
  server.close();
  assert.equal(seen.length, requests.length);
  assert.ok(continued > 0, 'no request needed CONTINUATION frames');
  // nghttp2 reads frames in order, so streams arrive in the order they were sent.
  requests.forEach((fields, i) => {
    const { headers, sensitive } = seen[i]!;
    assert.equal(headers[':path'], `/r/${i % 5}`);
    assert.equal(headers[':authority'], 'backend:8080');
    for (const [n, v] of fields) assert.equal(headers[n], v, `request ${i} ${n}`);
    assert.equal(headers['x-secret'], `s${i % 2}`);
    assert.ok(sensitive.includes('x-secret'), `request ${i}: ${sensitive.join()}`);
    assert.ok(sensitive.includes('authorization'), `request ${i}: ${sensitive.join()}`);
  });
  assert.equal(responses.length, requests.length);
  for (const r of responses) assert.equal(r.values[r.names.indexOf(':status')], '200');
});
