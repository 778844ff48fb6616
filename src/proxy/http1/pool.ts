// Keep-alive connections to HTTP/1 upstreams, per upstream address. Each connection has one set of
// listeners for its whole life, which pass events to whoever holds it now (`owner`), so that taking a
// connection from the pool and giving it back costs no listener churn.
import type { Socket } from 'node:net';

/** What an exchange must handle while it holds an upstream connection. */
export interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamClose(err: Error | undefined): void;
  onUpstreamDrain(): void;
}

export class UpstreamConn {
  owner: UpstreamOwner | null = null;
  /** Times this connection has been handed out; a reused connection may have been closed by the server. */
  uses = 0;
  idleSince = 0;
  private error: Error | undefined;

  constructor(
    readonly socket: Socket,
    readonly key: string,
    private readonly pool: UpstreamPool,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer) => {
    if (this.owner) this.owner.onUpstreamData(chunk);
    else this.socket.destroy(); // an idle server must not speak; the connection is no longer in a known state
  };
  private readonly onEnd = () => {
    if (this.owner) this.owner.onUpstreamEnd();
    else this.socket.destroy();
  };
  private readonly onDrain = () => this.owner?.onUpstreamDrain();
  private readonly onError = (err: Error) => {
    this.error = err;
  };
  private readonly onClose = () => {
    this.pool.forget(this);
    const owner = this.owner;
    this.owner = null;
    owner?.onUpstreamClose(this.error);
  };

  /** Hands the bare socket over (a tunnel): the pool and its listeners let go of it. */
  detach(): void {
    this.owner = null;
    this.pool.forget(this);
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('drain', this.onDrain);
    s.off('error', this.onError);
    s.off('close', this.onClose);
  }
}

export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConn[]>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly maxIdlePerKey: number,
    private readonly idleTimeoutMs: number,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, Math.min(1000, idleTimeoutMs / 4)));
    this.sweeper.unref();
  }

  /** Wraps a freshly connected socket. */
  adopt(socket: Socket, key: string): UpstreamConn {
    return new UpstreamConn(socket, key, this);
  }

  /** The most recently used idle connection to `key`, or undefined. */
  acquire(key: string): UpstreamConn | undefined {
    const list = this.idle.get(key);
    if (!list) return undefined;
    const now = performance.now();
    while (list.length) {
      const c = list.pop() as UpstreamConn;
      // Skip connections close to their idle limit: the server may be closing them right now.
      if (c.socket.destroyed || c.socket.readyState !== 'open' || now - c.idleSince > this.idleTimeoutMs) {
        c.socket.destroy();
        continue;
      }
      c.uses++;
      return c;
    }
    return undefined;
  }

  release(c: UpstreamConn): void {
    c.owner = null;
    if (this.closed || c.socket.destroyed) {
      c.socket.destroy();
      return;
    }
    let list = this.idle.get(c.key);
    if (!list) {
      list = [];
      this.idle.set(c.key, list);
    }
    if (list.length >= this.maxIdlePerKey) {
      c.socket.destroy();
      return;
    }
    c.idleSince = performance.now();
    list.push(c);
  }

  forget(c: UpstreamConn): void {
    const list = this.idle.get(c.key);
    if (!list) return;
    const i = list.indexOf(c);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.idle.delete(c.key);
  }

  private sweep(): void {
    const limit = performance.now() - this.idleTimeoutMs;
    for (const list of this.idle.values()) {
      for (const c of list) if (c.idleSince < limit) c.socket.destroy();
    }
  }

  /** Closes every idle connection and stops pooling (shutdown). */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const list of [...this.idle.values()]) for (const c of [...list]) c.socket.destroy();
    this.idle.clear();
  }
}
