// cache: a tiny in-memory key/value store speaking a line protocol over plain TCP (an "opaque"
// protocol to the mesh: port 6379, like Redis, so the proxies forward its bytes without parsing them).
//   GET key → $value | $ (missing)     SET key value → +OK     INCR key → :n     PING → +PONG
import net from 'node:net';
import { log } from './common.js';

const data = new Map();
const port = Number(process.env.PORT ?? 6379);

net
  .createServer((sock) => {
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [cmd = '', key = '', ...rest] = buf.slice(0, nl).trim().split(' ');
        buf = buf.slice(nl + 1);
        switch (cmd.toUpperCase()) {
          case 'PING':
            sock.write('+PONG\n');
            break;
          case 'GET':
            sock.write(`$${data.get(key) ?? ''}\n`);
            break;
          case 'SET':
            data.set(key, rest.join(' '));
            sock.write('+OK\n');
            break;
          case 'INCR': {
            const n = Number(data.get(key) ?? 0) + 1;
            data.set(key, String(n));
            sock.write(`:${n}\n`);
            break;
          }
          default:
            sock.write(`-ERR unknown command ${cmd}\n`);
        }
      }
    });
    sock.on('error', () => undefined);
  })
  .listen(port, '0.0.0.0', () => log(`cache listening on :${port}`));
