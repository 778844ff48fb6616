import { test } from 'node:test';
import assert from 'node:assert/strict';
import { H2Codes, H2Error, H2ErrorCode } from './errors.js';
import { encodeInteger, HeaderList, HpackDecoder, HpackEncoder, NEVER_INDEXED, NOT_INDEXED } from './hpack.js';
import { huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-code.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const list = (...pairs: [string, string, number?][]) => {
  const l = new HeaderList();
  for (const [n, v, f] of pairs) l.add(n, v, f ?? 0);
  return l;
};
const pairs = (l: HeaderList) => l.names.map((n, i) => [n, l.values[i]]);
const h2code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof H2Error, String(e));
    return e.code;
  }
  return 'no error';
};

void test('huffman code data: canonical, complete and prefix-free (RFC 7541 Appendix B)', () => {
  assert.equal(HUFFMAN_CODES.length, 257);
  assert.equal(HUFFMAN_LENGTHS.length, 257);
  // Kraft's sum of exactly 1 and codes assigned in (length, symbol) order: a typo in the table breaks both.
  let kraft = 0;
  const order = [...Array(257).keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  let code = 0;
  let prev = HUFFMAN_LENGTHS[order[0]!]!;
  for (const sym of order) {
    const len = HUFFMAN_LENGTHS[sym]!;
    kraft += 2 ** -len;
    code *= 2 ** (len - prev);
    prev = len;
    assert.equal(HUFFMAN_CODES[sym], code, `symbol ${sym}`);
    code++;
  }
  assert.equal(kraft, 1);
  assert.equal(HUFFMAN_CODES[256], 0x3fffffff);
  assert.equal(HUFFMAN_LENGTHS[256], 30);
});

void test('huffman: the strings of Appendix C both ways, and every octet round-trips', () => {
  const vectors: [string, string][] = [
    ['www.example.com', 'f1e3c2e5f23a6ba0ab90f4ff'],
    ['no-cache', 'a8eb10649cbf'],
    ['custom-key', '25a849e95ba97d7f'],
    ['custom-value', '25a849e95bb8e8b4bf'],
    ['302', '6402'],
    ['307', '640eff'],
    ['private', 'aec3771a4b'],
    ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07abe941054d444a8200595040b8166e082a62d1bff'],
    ['https://www.example.com', '9d29ad171863c78f0b97c8e9ae82ae43d3'],
    ['gzip', '9bd9ab'],
  ];
  const out = Buffer.alloc(256);
  for (const [plain, coded] of vectors) {
    assert.equal(huffmanEncodedLength(plain), coded.length / 2, plain);
    const n = huffmanEncode(plain, out, 0);
    assert.equal(out.subarray(0, n).toString('hex'), coded, plain);
    const src = hex(coded);
    const m = huffmanDecode(src, 0, src.length, out, 0);
    assert.equal(out.toString('latin1', 0, m), plain);
  }
  let all = '';
  for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
  all += all.split('').reverse().join('');
  const enc = Buffer.alloc(huffmanEncodedLength(all));
  assert.equal(huffmanEncode(all, enc, 0), enc.length);
  const dec = Buffer.alloc(all.length * 2);
  assert.equal(dec.toString('latin1', 0, huffmanDecode(enc, 0, enc.length, dec, 0)), all);
});

void test('huffman: EOS in a string, padding longer than 7 bits, padding with a 0 are COMPRESSION_ERROR', () => {
  const out = Buffer.alloc(64);
  const decode = (h: string) => () => huffmanDecode(hex(h), 0, h.length / 2, out, 0);
  assert.equal(h2code(decode('ffffffff')), H2Codes.HPACK_HUFFMAN); // 30 ones: EOS itself
  assert.equal(h2code(decode('1fff')), H2Codes.HPACK_HUFFMAN); // 'a' (00011) then 11 bits of padding
  assert.equal(h2code(decode('18')), H2Codes.HPACK_HUFFMAN); // 'a' then padding 000
  assert.equal(h2code(decode('ff')), H2Codes.HPACK_HUFFMAN); // 8 bits of padding and no symbol
  assert.equal(h2code(decode('1f')), 'no error'); // 'a' then 111
  try {
    decode('ffffffff')();
  } catch (e) {
    assert.equal((e as H2Error).h2Code, H2ErrorCode.COMPRESSION_ERROR);
    assert.equal((e as H2Error).scope, 'connection');
  }
});

void test('integers: RFC 7541 C.1 examples', () => {
  const out = Buffer.alloc(8);
  assert.equal(out.subarray(0, encodeInteger(out, 0, 10, 5)).toString('hex'), '0a');
  assert.equal(out.subarray(0, encodeInteger(out, 0, 1337, 5)).toString('hex'), '1f9a0a');
  assert.equal(out.subarray(0, encodeInteger(out, 0, 42, 8)).toString('hex'), '2a');
  // Decoding 1337 as a table size update (5-bit prefix, pattern 001): above the limit, so refused,
  // while 31 + 1305 = 1336 is not.
  const d = new HpackDecoder({ maxTableSize: 1336 });
  assert.equal(
    h2code(() => d.decode(hex('3f9a0a'))),
    H2Codes.HPACK_TABLE_SIZE_UPDATE,
  );
  d.decode(hex('3f990a'));
  assert.equal(d.tableMaxSize, 1336);
});

// RFC 7541 C.2: one field each, starting from an empty table.
const C2: [string, [string, string, number?][], string, number][] = [
  ['C.2.1', [['custom-key', 'custom-header']], '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', 55],
  ['C.2.2', [[':path', '/sample/path', NOT_INDEXED]], '040c 2f73 616d 706c 652f 7061 7468', 0],
  ['C.2.3', [['password', 'secret', NEVER_INDEXED]], '1008 7061 7373 776f 7264 0673 6563 7265 74', 0],
  ['C.2.4', [[':method', 'GET']], '82', 0],
];

void test('RFC 7541 C.2: literal and indexed fields, decoded and encoded byte for byte', () => {
  for (const [name, fields, bytes, tableSize] of C2) {
    const d = new HpackDecoder();
    const got = d.decode(hex(bytes));
    assert.deepEqual(
      pairs(got),
      fields.map(([n, v]) => [n, v]),
      name,
    );
    assert.deepEqual(
      got.flags,
      fields.map(([, , f]) => f ?? 0),
      name,
    );
    assert.equal(d.tableSize, tableSize, name);
    const e = new HpackEncoder({ huffman: 'never' });
    assert.equal(e.encode(list(...fields)).toString('hex'), hex(bytes).toString('hex'), name);
    assert.equal(e.tableSize, tableSize, name);
  }
});

const REQUESTS: [string, string][][] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ],
];
const C3 = [
  '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
  '8286 84be 5808 6e6f 2d63 6163 6865',
  '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
];
const C4 = [
  '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
  '8286 84be 5886 a8eb 1064 9cbf',
  '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
];
const REQUEST_TABLES = [57, 110, 164];

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSES: [string, string][][] = [
  [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', DATE1],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', DATE2],
    ['location', 'https://www.example.com'],
    ['content-encoding', 'gzip'],
    ['set-cookie', COOKIE],
  ],
];
const C5 = [
  '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d' +
    '546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
  '4803 3330 37c1 c0bf',
  '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f' +
    '6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b' +
    '2076 6572 7369 6f6e 3d31',
];
const C6 = [
  '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7' +
    '8f0b 97c8 e9ae 82ae 43d3',
  '4883 640e ffc1 c0bf',
  '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335' +
    'dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
];
const RESPONSE_TABLES = [222, 222, 215];

void test('RFC 7541 C.3 and C.4: three requests on one connection, without and with Huffman', () => {
  for (const [name, blocks, huffman] of [
    ['C.3', C3, 'never'],
    ['C.4', C4, 'always'],
  ] as const) {
    const d = new HpackDecoder();
    const e = new HpackEncoder({ huffman });
    REQUESTS.forEach((req, i) => {
      const got = d.decode(hex(blocks[i]!));
      assert.deepEqual(pairs(got), req, `${name}.${i + 1}`);
      assert.equal(d.tableSize, REQUEST_TABLES[i], `${name}.${i + 1}`);
      assert.equal(e.encode(list(...req)).toString('hex'), hex(blocks[i]!).toString('hex'), `${name}.${i + 1}`);
      assert.equal(e.tableSize, REQUEST_TABLES[i]);
    });
    assert.equal(d.tableCount, 3);
  }
});

void test('RFC 7541 C.5 and C.6: three responses with a 256-byte table, with evictions', () => {
  for (const [name, blocks, huffman] of [
    ['C.5', C5, 'never'],
    ['C.6', C6, 'always'],
  ] as const) {
    const d = new HpackDecoder();
    const e = new HpackEncoder({ maxTableSize: 256, huffman });
    // The examples assume a table of 256 bytes on both sides: our encoder says so with a size update
    // before its first block (RFC 7541 section 6.3), here sent on its own.
    const update = e.encode(new HeaderList());
    assert.equal(update.toString('hex'), '3fe101');
    assert.equal(d.decode(update).length, 0);
    assert.equal(d.tableMaxSize, 256);
    RESPONSES.forEach((res, i) => {
      const got = d.decode(hex(blocks[i]!));
      assert.deepEqual(pairs(got), res, `${name}.${i + 1}`);
      assert.equal(d.tableSize, RESPONSE_TABLES[i], `${name}.${i + 1}`);
      assert.equal(e.encode(list(...res)).toString('hex'), hex(blocks[i]!).toString('hex'), `${name}.${i + 1}`);
      assert.equal(e.tableSize, RESPONSE_TABLES[i]);
    });
    // After C.x.3 the table holds set-cookie, content-encoding and the second date, newest first.
    const table = [
      ['set-cookie', COOKIE],
      ['content-encoding', 'gzip'],
      ['date', DATE2],
    ];
    assert.deepEqual(pairs(d.decode(hex('bebfc0'))), table);
  }
});

/** mulberry32: a small seeded generator, so that a failing round-trip can be replayed. */
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

void test('round-trips of random field lists through an encoder and a decoder that stay in step', () => {
  const names = [
    ':method',
    ':path',
    ':authority',
    'content-type',
    'te',
    'grpc-timeout',
    'user-agent',
    'x-a',
    'authorization',
    'cookie',
    'date',
    'x-request-id',
    'accept-encoding',
    ':status',
  ];
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const r = rng(seed);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
    const str = (max: number): string => {
      const n = Math.floor(r() * max);
      let s = '';
      // Mostly visible ASCII, sometimes any octet: HPACK carries octets, not characters.
      for (let i = 0; i < n; i++) {
        s += String.fromCharCode(r() < 0.9 ? 0x20 + Math.floor(r() * 95) : Math.floor(r() * 256));
      }
      return s;
    };
    const huffman = pick(['auto', 'always', 'never'] as const);
    const e = new HpackEncoder({ maxTableSize: pick([0, 64, 256, 4096, 8192]), huffman });
    const d = new HpackDecoder({ maxTableSize: 8192 });
    for (let block = 0; block < 200; block++) {
      if (r() < 0.05) e.setPeerMaxTableSize(pick([0, 100, 4096, 8192]));
      const l = new HeaderList();
      const count = Math.floor(r() * 12);
      for (let i = 0; i < count; i++) {
        const name = r() < 0.8 ? pick(names) : str(20).toLowerCase();
        const common = ['', 'GET', '/', 'application/grpc', 'trailers', '200'];
        const value = r() < 0.3 ? pick(common) : str(r() < 0.1 ? 3000 : 40);
        l.add(name, value, r() < 0.1 ? NEVER_INDEXED : r() < 0.1 ? NOT_INDEXED : 0);
      }
      const got = d.decode(e.encode(l));
      assert.deepEqual(pairs(got), pairs(l), `seed ${seed} block ${block}`);
      l.flags.forEach((f, i) => {
        if (f === NEVER_INDEXED) assert.equal(got.flags[i], NEVER_INDEXED, `seed ${seed} block ${block} field ${i}`);
      });
      assert.equal(d.tableSize, e.tableSize, `seed ${seed} block ${block}`);
      assert.equal(got.size, l.size);
    }
  }
});

void test('sensitive fields go as never-indexed literals and keep the flag through a re-encoding', () => {
  const e = new HpackEncoder();
  const d = new HpackDecoder();
  const sent = list(['authorization', 'Bearer x'], ['cookie', 'a=1'], ['x-secret', 's', NEVER_INDEXED]);
  const got = d.decode(e.encode(sent));
  assert.deepEqual(got.flags, [NEVER_INDEXED, NEVER_INDEXED, NEVER_INDEXED]);
  assert.equal(d.tableCount, 0);
  // A proxy decodes with one decoder and re-encodes for the next hop with another encoder.
  const next = new HpackDecoder().decode(new HpackEncoder().encode(got));
  assert.deepEqual(next.flags, [NEVER_INDEXED, NEVER_INDEXED, NEVER_INDEXED]);
  // A long cookie is indexed like any other field; the second time it is one byte.
  const cookie = list(['cookie', 'session=0123456789abcdef0123456789']);
  e.encode(cookie);
  assert.equal(e.encode(cookie).length, 1);
});

void test('decoding errors: bad index, integer overflow, truncation, misplaced or oversized size updates', () => {
  const dec =
    (h: string, d = new HpackDecoder()) =>
    () =>
      d.decode(hex(h));
  assert.equal(h2code(dec('80')), H2Codes.HPACK_BAD_INDEX); // index 0
  assert.equal(h2code(dec('be')), H2Codes.HPACK_BAD_INDEX); // 62 with an empty dynamic table
  assert.equal(h2code(dec('7f0a 0161')), H2Codes.HPACK_BAD_INDEX); // literal whose name index is 73
  assert.equal(h2code(dec('ffffffffff0f')), H2Codes.HPACK_INTEGER_OVERFLOW);
  assert.equal(h2code(dec('ff8080808080808001')), H2Codes.HPACK_INTEGER_OVERFLOW); // long run of zero groups
  assert.equal(h2code(dec('ff')), H2Codes.HPACK_TRUNCATED);
  assert.equal(h2code(dec('400a 6375 7374')), H2Codes.HPACK_TRUNCATED);
  assert.equal(h2code(dec('40')), H2Codes.HPACK_TRUNCATED);
  assert.equal(h2code(dec('0001')), H2Codes.HPACK_TRUNCATED);
  assert.equal(h2code(dec('4081ff0161')), H2Codes.HPACK_HUFFMAN); // a Huffman name that is 8 bits of padding
  assert.equal(h2code(dec('8220')), H2Codes.HPACK_TABLE_SIZE_UPDATE); // after a field
  assert.equal(h2code(dec('3fe21f')), H2Codes.HPACK_TABLE_SIZE_UPDATE); // 4097 > 4096
  assert.equal(h2code(dec('3fe11f 82')), 'no error'); // 4096 is fine, and two updates may open a block
  assert.equal(h2code(dec('20 3fe11f 82')), 'no error');
  try {
    dec('be')();
  } catch (e) {
    assert.equal((e as H2Error).h2Code, H2ErrorCode.COMPRESSION_ERROR);
    assert.equal((e as H2Error).scope, 'connection');
    assert.match((e as H2Error).message, /^hpack: index 62/);
  }
});

void test('after we lower SETTINGS_HEADER_TABLE_SIZE, the next block must start with a size update', () => {
  const d = new HpackDecoder();
  d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
  d.setMaxTableSize(40);
  assert.equal(
    h2code(() => d.decode(hex('82'))),
    H2Codes.HPACK_TABLE_SIZE_UPDATE,
  );
  const d2 = new HpackDecoder();
  d2.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
  d2.setMaxTableSize(40);
  assert.equal(
    h2code(() => d2.decode(hex('3f0a'))),
    H2Codes.HPACK_TABLE_SIZE_UPDATE,
  ); // 41 > 40
  d2.decode(hex('3f09 82')); // 40: the 55-byte entry is evicted
  assert.equal(d2.tableSize, 0);
  assert.equal(
    h2code(() => d2.decode(hex('be'))),
    H2Codes.HPACK_BAD_INDEX,
  );
  // Raising the limit needs no update: the peer may keep its smaller table.
  d2.setMaxTableSize(8192);
  d2.decode(hex('82'));
});

void test('encoder: SETTINGS_HEADER_TABLE_SIZE changes send the smallest size, then the final one', () => {
  const e = new HpackEncoder({ maxTableSize: 8192 });
  assert.equal(e.encode(list([':method', 'GET'])).toString('hex'), '82'); // 4096 is the starting size
  e.setPeerMaxTableSize(0);
  e.setPeerMaxTableSize(8192);
  assert.equal(e.encode(list([':method', 'GET'])).toString('hex'), '20' + '3fe13f' + '82');
  assert.equal(e.tableMaxSize, 8192);
  e.setPeerMaxTableSize(100);
  assert.equal(e.encode(list([':method', 'GET'])).toString('hex'), '3f45' + '82');
  e.setPeerMaxTableSize(100);
  assert.equal(e.encode(list([':method', 'GET'])).toString('hex'), '82');
  // Entries that would take more than 3/4 of the table are sent without indexing.
  const big = e.encode(list(['x-big', 'v'.repeat(60)]));
  assert.equal(big[0]! & 0xf0, 0x00);
  assert.equal(e.tableSize, 0);
});

void test('an HPACK bomb is refused after bounded work, and the table stays in step', () => {
  // One 4000-byte entry, then 16,000 one-byte references to it: 64 MB if expanded.
  // (Our encoder would not index an entry that large, so the seed block is written by hand.)
  const value = Buffer.alloc(4000, 'b');
  const len = Buffer.alloc(4);
  const lenBytes = len.subarray(0, encodeInteger(len, 0, 4000, 7));
  const seed = Buffer.concat([hex('4006'), Buffer.from('x-bomb'), lenBytes, value]);
  const e = new HpackEncoder({ huffman: 'never' });
  const bomb = Buffer.concat([hex('be'.repeat(8)), Buffer.alloc(16000, 0xbe)]);
  const d = new HpackDecoder({ maxHeaderListSize: 16384 });
  d.decode(seed);
  const out = new HeaderList();
  const before = process.memoryUsage().heapUsed;
  const t0 = process.hrtime.bigint();
  let err: unknown;
  try {
    d.decode(bomb, out);
  } catch (e) {
    err = e;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(err instanceof H2Error);
  assert.equal(err.code, H2Codes.HEADER_LIST_TOO_LARGE);
  assert.equal(err.scope, 'stream');
  assert.ok(out.length <= 4, `kept ${out.length} fields`);
  assert.ok(out.size <= 16384);
  assert.ok(ms < 100, `took ${ms} ms`);
  assert.ok(process.memoryUsage().heapUsed - before < 8 * 1024 * 1024);
  // Fields that are indexed after the limit still enter the table, so the next block decodes the same
  // as it does for a decoder without a limit.
  const tail = e.encode(list(['x-after', 'y'.repeat(100)]));
  const unlimited = new HpackDecoder({ maxHeaderListSize: 1 << 30 });
  unlimited.decode(seed);
  unlimited.decode(Buffer.concat([Buffer.alloc(20000, 0xbe), tail]));
  const limited = new HpackDecoder({ maxHeaderListSize: 16384 });
  limited.decode(seed);
  const late = Buffer.concat([Buffer.alloc(20000, 0xbe), tail]);
  assert.equal(
    h2code(() => limited.decode(late)),
    H2Codes.HEADER_LIST_TOO_LARGE,
  );
  assert.equal(limited.tableSize, unlimited.tableSize);
  assert.deepEqual(pairs(limited.decode(hex('be'))), [['x-after', 'y'.repeat(100)]]);
  assert.deepEqual(pairs(unlimited.decode(hex('be'))), [['x-after', 'y'.repeat(100)]]);
});
