// Reads a proxy's admin server across the bridge for the commands that show its state (`identity`,
// `authz`): /identity and /policy need the mesh's admin token from another pod, so it is sent along.
import http from 'node:http';
import { readTapToken } from './client.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';

/** The mesh's admin (tap) token, or undefined when it cannot be read (not root): the proxy then says 401. */
export async function adminToken(dir: string): Promise<string | undefined> {
  try {
    return await readTapToken(dir);
  } catch {
    return undefined;
  }
}

/** GET http://<ip>:<admin port><path> with the token as a bearer; the status and the body as text. */
export function adminGet(
  ip: string,
  path: string,
  token: string | undefined,
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = token !== undefined ? { authorization: `Bearer ${token}` } : {};
    const req = http.get(`http://${ip}:${PROXY_ADMIN_PORT}${path}`, { timeout: timeoutMs, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
