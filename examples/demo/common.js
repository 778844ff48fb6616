// What the demo's programs share: a tiny HTTP/1.1 JSON server and client (keep-alive), and a client
// for the cache's line protocol. Plain Node, no framework: each program is one small file.
import http from 'node:http';
import net from 'node:net';

export const log = (...args) => console.log(new Date().toISOString(), ...args);

/** An HTTP/1.1 server on `port`; `handler(req, url)` returns [status, body] (body JSON-encoded). */
export function serve(port, handler) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://local');
    let status = 500;
    let body;
    try {
      [status, body] = url.pathname === '/healthz' ? [200, { ok: true }] : await handler(req, url);
    } catch (err) {
      [status, body] = [502, { error: err.message }];
    }
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(port, '0.0.0.0', () => log(`listening on :${port}`));
  return server;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** GET http://host:port/path → { status, body (parsed JSON or text) }. */
export function get(host, port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent, headers, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}:${port}${path} timed out`)));
    req.on('error', reject);
  });
}

/** A connection to the cache (one command at a time, replies in order): `await cache.cmd('INCR k')`. */
export class CacheClient {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.sock = undefined;
    this.waiting = [];
    this.buf = '';
  }

  connect() {
    const sock = net.connect({ host: this.host, port: this.port });
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.resolve(line);
      }
    });
    const fail = (err) => {
      if (this.sock === sock) this.sock = undefined;
      for (const w of this.waiting.splice(0)) w.reject(err ?? new Error('cache connection closed'));
    };
    sock.on('error', fail);
    sock.on('close', () => fail());
    this.sock = sock;
    return sock;
  }

  cmd(line) {
    const sock = this.sock ?? this.connect();
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      sock.write(`${line}\n`);
    });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
