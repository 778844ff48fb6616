// HTTP/2 header blocks as the proxy passes them on: what must not cross it.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/** Headers that must not cross the proxy (RFC 9113 section 8.2.2); Node refuses most of them anyway. */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'host',
]);

/** A header block as it goes on: connection-specific fields left out, `te` only as "trailers". */
export function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const k of Object.keys(h)) {
    if (DROP.has(k)) continue;
    if (k === 'te' && h[k] !== 'trailers') continue;
    out[k] = h[k];
  }
  return out;
}

/** A header's value as one string (the first of a list). */
export function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
