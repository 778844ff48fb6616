// The injector: a mutating admission webhook (HTTPS, AdmissionReview v1) that answers with a JSON
// Patch adding the mesh to pods (see inject.ts for what is added and when). It never refuses a pod:
// anything it cannot handle is admitted unchanged with a warning, and whether an unreachable webhook
// blocks pods is the MutatingWebhookConfiguration's failurePolicy (Ignore unless the user asks).
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from '../core/log.js';
import { injectObject, type InjectConfig, type Json } from './inject.js';
import { WEBHOOK_PATH } from './names.js';

/** Largest AdmissionReview body read (bytes); the API server's own request limit is 3 MiB. */
export const MAX_REVIEW_BYTES = 4 * 1024 * 1024;

export interface WebhookOptions {
  readonly inject: InjectConfig;
  /** A namespace's annotations (undefined: not known, treated as none). */
  readonly namespaceAnnotations: (
    namespace: string,
  ) => Readonly<Record<string, string>> | undefined | Promise<Readonly<Record<string, string>> | undefined>;
  /** PEM; read again by the caller and passed to `setCertificate` when the Secret is rotated. */
  readonly cert: string;
  readonly key: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly log?: Logger;
}

export interface Webhook {
  readonly port: number;
  readonly server: Server;
  /** How many pods were injected, skipped, and failed (for metrics and tests). */
  readonly counts: { injected: number; skipped: number; errors: number };
  setCertificate(cert: string, key: string): void;
  close(): Promise<void>;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: true;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly warnings?: string[];
}

/** One AdmissionReview in, its answer out (exported for unit tests and `outrigger inject`). */
export async function review(
  body: unknown,
  o: Pick<WebhookOptions, 'inject' | 'namespaceAnnotations'>,
): Promise<{ response: AdmissionResponse; injected: boolean; reason: string }> {
  const req = (body as { request?: Json } | undefined)?.request;
  const uid = typeof req?.uid === 'string' ? req.uid : '';
  if (req === undefined || uid === '') throw new Error('not an AdmissionReview request (request.uid is missing)');
  const object = req.object as Json | undefined;
  if (req.operation !== 'CREATE' || object === undefined)
    return {
      response: { uid, allowed: true },
      injected: false,
      reason: `operation ${String(req.operation)} is not injected`,
    };
  const namespace =
    typeof req.namespace === 'string'
      ? req.namespace
      : (((object.metadata as Json | undefined)?.namespace as string | undefined) ?? 'default');
  const nsAnnotations = (await o.namespaceAnnotations(namespace)) ?? {};
  const { ops, decision } = injectObject(object, nsAnnotations, o.inject, 'webhook');
  if (!decision.inject) {
    const warn = decision.reason.startsWith('bad annotations')
      ? { warnings: [`outrigger: not injected: ${decision.reason}`] }
      : {};
    return { response: { uid, allowed: true, ...warn }, injected: false, reason: decision.reason };
  }
  return {
    response: {
      uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
    },
    injected: true,
    reason: 'injected',
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REVIEW_BYTES) {
        reject(new Error(`body larger than ${MAX_REVIEW_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startWebhook(o: WebhookOptions): Promise<Webhook> {
  const log = o.log ?? pino({ level: 'silent' });
  const counts = { injected: 0, skipped: 0, errors: 0 };
  const server = createServer({ cert: o.cert, key: o.key, minVersion: 'TLSv1.2' }, (req, res) => {
    void (async () => {
      if (req.url?.split('?')[0] === '/live' || req.url?.split('?')[0] === '/ready') {
        send(res, 200, { ok: true });
        return;
      }
      if (req.method !== 'POST' || req.url?.split('?')[0] !== WEBHOOK_PATH) {
        send(res, 404, { error: `POST ${WEBHOOK_PATH} only` });
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse((await readBody(req)).toString('utf8'));
      } catch (err) {
        counts.errors++;
        send(res, 400, { error: `bad request: ${(err as Error).message}` });
        return;
      }
      try {
        const r = await review(body, o);
        if (r.injected) counts.injected++;
        else counts.skipped++;
        const req0 = (body as { request: Json }).request;
        const meta = (req0.object as Json | undefined)?.metadata as Json | undefined;
        log.info(
          {
            uid: r.response.uid,
            namespace: req0.namespace,
            name: meta?.name ?? meta?.generateName,
            injected: r.injected,
            reason: r.reason,
          },
          'admission review',
        );
        send(res, 200, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: r.response });
      } catch (err) {
        counts.errors++;
        const uid = (body as { request?: { uid?: unknown } } | undefined)?.request?.uid;
        log.warn({ err: (err as Error).message }, 'admission review failed; the pod is admitted unchanged');
        if (typeof uid === 'string')
          send(res, 200, {
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid, allowed: true, warnings: [`outrigger: not injected: ${(err as Error).message}`] },
          });
        else send(res, 400, { error: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port }, 'injector webhook listening');
  return {
    port,
    server,
    counts,
    setCertificate: (cert, key) => server.setSecureContext({ cert, key }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
