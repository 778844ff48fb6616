// TLS 1.3 session resumption between proxies: the ticket lifetime both sides use, and the outbound
// side's bounded cache of the tickets peer proxies sent, so that a new connection to the same proxy can
// resume (no certificates, no signatures) instead of running a full handshake. What must match for a
// ticket to be offered is its key (`sessionKey`); a ticket is offered until its lifetime ends or either
// certificate its session was made with expires, whichever comes first.
import type { SpiffeId } from '../../api/identity.js';
import type { MeshAlpn } from './alpn.js';

/**
 * Lifetime of a session ticket (seconds): what the inbound side sets as its sessionTimeout (the
 * ticket_lifetime it announces, and how old a session it still resumes), and the longest the outbound
 * side keeps one. It bounds how long a resumption can extend trust in a certificate verified at the
 * full handshake (RFC 8446 section 4.6.1 recommends such a limit).
 */
export const SESSION_LIFETIME_S = 300;

/** A session from a 'session' event, as tls.connect takes it back, and when it may no longer be used
 *  (ms since the epoch). */
export interface CachedSession {
  readonly session: Buffer;
  readonly expires: number;
}

export interface SessionCacheOptions {
  /** Tickets held at most, all keys together; the least recently used key loses its oldest first. Default 256. */
  readonly maxTickets?: number;
  /** Tickets held at most per key (the oldest goes first). Default 16. */
  readonly maxPerKey?: number;
  /** Wall clock (ms since the epoch; certificate expiry is wall-clock time). */
  readonly now?: () => number;
}

/**
 * The key of a session: the expected server identity (the session's server passed the exact-identity
 * check once: only a connection that expects that same identity may skip it), this proxy's own
 * certificate (`certId`: one number per IdentityCert, so a rotation leaves the old sessions unused), the
 * ALPN, and the endpoint address (a ticket is only worth offering to the server that issued it).
 */
export function sessionKey(certId: number, serverId: SpiffeId, alpn: MeshAlpn, addr: string): string {
  return `${certId}\0${serverId}\0${alpn}\0${addr}`;
}

/**
 * A bounded LRU of tickets by key. `offer` keeps what it returns: a ticket is offered to every new
 * connection of its key while it lives. RFC 8446 appendix C.4 asks clients to use a ticket once, so that
 * observers cannot link connections by it; between two pods' proxies the addresses link them anyway,
 * and OpenSSL sends no new ticket on a resumed connection, so single use would resume at most two
 * connections of every three (a full handshake brings two tickets). No early data is ever sent, so a
 * reused ticket replays nothing.
 */
export class SessionCache {
  /** Map order is recency: the first key is the least recently used. Each list is oldest first. */
  readonly #byKey = new Map<string, CachedSession[]>();
  readonly #maxTickets: number;
  readonly #maxPerKey: number;
  readonly #now: () => number;
  #size = 0;

  constructor(opts: SessionCacheOptions = {}) {
    this.#maxTickets = opts.maxTickets ?? 256;
    this.#maxPerKey = opts.maxPerKey ?? 16;
    this.#now = opts.now ?? Date.now;
  }

  /** Tickets held. */
  get size(): number {
    return this.#size;
  }

  /** The newest ticket of `key` that has not expired (expired ones are dropped); it stays cached. */
  offer(key: string): CachedSession | undefined {
    const list = this.#byKey.get(key);
    if (list === undefined) return undefined;
    const now = this.#now();
    let found: CachedSession | undefined;
    while (found === undefined && list.length > 0) {
      const t = list[list.length - 1] as CachedSession;
      if (t.expires > now) found = t;
      else {
        list.pop();
        this.#size--;
      }
    }
    this.#byKey.delete(key);
    if (list.length > 0) this.#byKey.set(key, list);
    return found;
  }

  /** Keeps a ticket for `key` until `expires` (ms since the epoch); one already expired is not kept. */
  put(key: string, session: Buffer, expires: number): void {
    if (!(expires > this.#now())) return;
    let list = this.#byKey.get(key);
    if (list === undefined) list = [];
    else this.#byKey.delete(key);
    this.#byKey.set(key, list);
    list.push({ session, expires });
    this.#size++;
    if (list.length > this.#maxPerKey) {
      list.shift();
      this.#size--;
    }
    while (this.#size > this.#maxTickets) {
      const [oldestKey, oldest] = this.#byKey.entries().next().value as [string, CachedSession[]];
      oldest.shift();
      this.#size--;
      if (oldest.length === 0) this.#byKey.delete(oldestKey);
    }
  }

  /** Forgets every ticket of `key`: a server that did not resume one of them (it restarted, or rotated
   *  its certificate and with it its ticket keys) will not resume the others (RFC 9149 section 3). */
  drop(key: string): void {
    const list = this.#byKey.get(key);
    if (list === undefined) return;
    this.#size -= list.length;
    this.#byKey.delete(key);
  }

  clear(): void {
    this.#byKey.clear();
    this.#size = 0;
  }
}
