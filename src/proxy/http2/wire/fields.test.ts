// Unit tests of the RFC 9113 section 8 checks of field sections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkedContentLength, checkFields, Section, type SectionValue } from './fields.js';
import { HeaderList } from './hpack.js';

const list = (pairs: [string, string][]) => {
  const l = new HeaderList();
  for (const [n, v] of pairs) l.add(n, v);
  return l;
};
const REQ: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/'],
  [':authority', 'a'],
];

void test('well-formed requests, responses and trailers pass; content-length is read', () => {
  assert.equal(checkFields(list([...REQ, ['content-length', '12'], ['te', 'trailers']]), Section.REQUEST), null);
  assert.equal(checkedContentLength, 12);
  assert.equal(checkFields(list(REQ), Section.REQUEST), null);
  assert.equal(checkedContentLength, -1);
  assert.equal(
    checkFields(
      list([
        [':method', 'CONNECT'],
        [':authority', 'a:443'],
      ]),
      Section.REQUEST,
    ),
    null,
  );
  assert.equal(
    checkFields(
      list([
        [':status', '200'],
        ['x-a', 'b c'],
      ]),
      Section.RESPONSE,
    ),
    null,
  );
  assert.equal(checkFields(list([['grpc-status', '0']]), Section.TRAILERS), null);
});

void test('malformed sections are named', () => {
  const cases: [[string, string][], SectionValue, RegExp][] = [
    [[...REQ, ['X-Upper', '1']], Section.REQUEST, /invalid field name/],
    [[...REQ, ['connection', 'close']], Section.REQUEST, /connection-specific/],
    [[...REQ, ['transfer-encoding', 'chunked']], Section.REQUEST, /connection-specific/],
    [[...REQ, ['te', 'gzip']], Section.REQUEST, /te other/],
    [[...REQ, ['x', 'a\r\nb: c']], Section.REQUEST, /invalid value/],
    [[...REQ, ['x', ' padded']], Section.REQUEST, /invalid value/],
    [[...REQ, ['content-length', '1'], ['content-length', '2']], Section.REQUEST, /conflicting/],
    [[...REQ, ['content-length', '-1']], Section.REQUEST, /invalid content-length/],
    [[['x', '1'], ...REQ], Section.REQUEST, /after a regular field/],
    [[...REQ, [':path', '/again']], Section.REQUEST, /repeated/],
    [
      [
        [':method', 'GET'],
        [':path', '/'],
      ],
      Section.REQUEST,
      /without :scheme/,
    ],
    [
      [
        [':scheme', 'http'],
        [':path', '/'],
      ],
      Section.REQUEST,
      /without :method/,
    ],
    [
      [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':path', ''],
      ],
      Section.REQUEST,
      /empty :path/,
    ],
    [[...REQ, [':status', '200']], Section.REQUEST, /unknown pseudo-header/],
    [
      [
        [':method', 'CONNECT'],
        [':authority', 'a'],
        [':path', '/'],
      ],
      Section.REQUEST,
      /connect/,
    ],
    [[['x', '1']], Section.RESPONSE, /without :status/],
    [
      [
        [':status', '200'],
        [':path', '/'],
      ],
      Section.RESPONSE,
      /in a response/,
    ],
    [[[':status', '200']], Section.TRAILERS, /in trailers/],
  ];
  for (const [pairs, section, why] of cases) assert.match(checkFields(list(pairs), section) ?? 'null', why);
});
