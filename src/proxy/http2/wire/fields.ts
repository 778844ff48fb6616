// The checks RFC 9113 section 8 makes of a decoded field section before anyone acts on it: pseudo-header
// fields (which, where, how many), lowercase names, no connection-specific fields, and content-length as a
// number. A proxy that forwarded such a head could be led into request smuggling by the next hop.
import type { HeaderList } from './hpack.js';

/** What kind of field section is being checked. */
export const Section = {
  REQUEST: 0,
  RESPONSE: 1,
  TRAILERS: 2,
} as const;
export type SectionValue = (typeof Section)[keyof typeof Section];

/** content-length of the last head checked: -1 when absent. */
export let checkedContentLength = -1;

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** Whether a name has a character that is not allowed in an HTTP/2 field name (section 8.2.1): uppercase
 *  letters, or anything outside visible ASCII, or the separators that RFC 9110 tokens exclude. */
function badName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || (c >= 0x41 && c <= 0x5a)) return true;
    // ( ) , / ; < = > ? @ [ \ ] { } "
    if (c === 0x22 || c === 0x28 || c === 0x29 || c === 0x2c || c === 0x2f || c === 0x3b) return true;
    if ((c >= 0x3c && c <= 0x40) || c === 0x5b || c === 0x5c || c === 0x5d || c === 0x7b || c === 0x7d) return true;
  }
  return false;
}

/** Whether a value has NUL, CR or LF, or starts or ends with whitespace (section 8.2.1). */
function badValue(value: string): boolean {
  const n = value.length;
  if (n === 0) return false;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return true;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return true;
  }
  return false;
}

/**
 * Returns why the field section is malformed (section 8.1.1: a stream error of type PROTOCOL_ERROR), or
 * null when it is well formed; sets checkedContentLength. Requests need :method, and :scheme and :path
 * unless the method is CONNECT (section 8.3.1); responses need exactly :status; trailers have no
 * pseudo-header fields. A repeated or unknown pseudo-header field, or one after a regular field, is
 * malformed (section 8.3).
 */
export function checkFields(list: HeaderList, section: SectionValue): string | null {
  const names = list.names;
  const values = list.values;
  checkedContentLength = -1;
  let regular = false;
  let method: string | undefined;
  let seen = 0;
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const value = values[i] as string;
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return `pseudo-header ${name} after a regular field`;
      if (section === Section.TRAILERS) return `pseudo-header ${name} in trailers`;
      let bit: number;
      if (section === Section.RESPONSE) {
        if (name !== ':status') return `pseudo-header ${name} in a response`;
        bit = 1;
      } else if (name === ':method') {
        bit = 1;
        method = value;
      } else if (name === ':scheme') bit = 2;
      else if (name === ':path') {
        bit = 4;
        if (value === '') return 'empty :path';
      } else if (name === ':authority') bit = 8;
      else if (name === ':protocol') bit = 16;
      else return `unknown pseudo-header ${name}`;
      if ((seen & bit) !== 0) return `repeated ${name}`;
      seen |= bit;
      if (badValue(value)) return `invalid value of ${name}`;
      continue;
    }
    regular = true;
    if (name.length === 0 || badName(name)) return `invalid field name ${JSON.stringify(name.slice(0, 64))}`;
    if (badValue(value)) return `invalid value of ${name}`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
    if (name === 'te' && value !== 'trailers') return 'te other than trailers';
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) return 'invalid content-length';
      const n = Number(value);
      if (checkedContentLength !== -1 && checkedContentLength !== n) return 'conflicting content-length';
      checkedContentLength = n;
    }
  }
  if (section === Section.RESPONSE && seen !== 1) return 'response without :status';
  if (section === Section.REQUEST) {
    if ((seen & 1) === 0) return 'request without :method';
    // CONNECT (section 8.5) has only :method and :authority, unless it is extended CONNECT (RFC 8441).
    if (method === 'CONNECT' && (seen & 16) === 0) {
      if (seen !== (1 | 8)) return 'connect with :scheme or :path, or without :authority';
    } else if ((seen & 6) !== 6) return 'request without :scheme or :path';
  }
  return null;
}
