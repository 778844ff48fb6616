// What the data path gets for one destination: its own balancer and circuit breakers (`own`: opaque
// TCP, and HTTP when it has no routes), its compiled route table, one balancer and one set of circuit breakers per backend Service
// the routes name, and its retry budget. `routeRequest` turns a request into where it goes (a backend
// with an available endpoint) or the typed error to answer; a destination without routes never calls
// it (the data path checks `table.empty`: one branch).
import type { InFlightLimit } from './limit.js';
import type { Balancer, Endpoint } from '../balance/balancer.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { pickAvailable, type Breakers } from './breaker.js';
import type { RetryBudget } from './retry.js';
import { chooseBackend } from './split.js';
import { matchRoute, type CompiledRule, type RouteCandidate, type RouteRequest, type RouteTable } from './table.js';

/** A backend Service port of a destination's routes, kept across answers (balancer stats, breakers). */
export interface BackendTarget {
  /** `name.ns.svc.cluster.local:port`. */
  readonly service: string;
  readonly balancer: Balancer;
  readonly breakers: Breakers;
}

export interface Router {
  /** Over the Service's own ready endpoints. */
  readonly balancer: Balancer;
  /** The Service's own endpoints as a backend: `balancer` and the breakers of its endpoints, kept
   *  across answers. Where a request or connection goes when there are no routes. */
  readonly own: BackendTarget;
  /** The routes of the latest answer (EMPTY_TABLE, whose `empty` is true, when there are none). */
  readonly table: RouteTable;
  /** The Service's authority, for messages; undefined for a pod. */
  readonly service: string | undefined;
  /** One per destination, shared by its routes. */
  readonly budget: RetryBudget;
  /** The destination's bound on requests in flight and waiting (HTTP only; a connection of opaque
   *  TCP is not a request). */
  readonly limit: InFlightLimit;
  /** The backend of that name in the latest answer. */
  backend(service: string): BackendTarget | undefined;
}

/** Where one attempt of a routed request goes. */
export interface Attempt {
  readonly backend: BackendTarget;
  readonly endpoint: Endpoint;
}

/** Answers undefined when `r.table` is empty (use `r.balancer`); else the matching rule and its match
 *  (the prefix matters to rewrites), or throws NO_ROUTE. */
export function findRoute(r: Router, req: RouteRequest, label: string): RouteCandidate {
  const c = matchRoute(r.table, req);
  if (c === undefined) throw new ProxyError(Codes.NO_ROUTE, `${label}: no route matches ${req.method} ${req.path}`);
  return c;
}

/** The backend for one attempt of `rule` (a weighted choice) and an endpoint of it that its breakers
 *  let through, preferring one other than `avoid` (a retry goes elsewhere when it can). Throws
 *  ROUTE_NO_BACKEND (500), NO_ENDPOINTS or ENDPOINTS_EJECTED (503). */
export function chooseAttempt(
  r: Router,
  rule: CompiledRule,
  label: string,
  random: () => number,
  avoid?: string,
): Attempt {
  const choice = chooseBackend(rule.split, random);
  const backend = choice !== undefined && choice.exists ? r.backend(choice.service) : undefined;
  if (backend === undefined) {
    const why =
      choice === undefined ? 'has no backend with a weight' : `sends to ${choice.service}, which does not exist`;
    throw new ProxyError(Codes.ROUTE_NO_BACKEND, `${label}: route ${rule.route} rule ${rule.name} ${why}`);
  }
  const endpoint = pickEndpoint(backend, avoid);
  if (endpoint === undefined) {
    if (backend.balancer.endpoints.length === 0)
      throw new ProxyError(Codes.NO_ENDPOINTS, `${label}: backend ${backend.service}: no ready endpoints`);
    throw new ProxyError(
      Codes.ENDPOINTS_EJECTED,
      `${label}: backend ${backend.service}: every endpoint is ejected by its circuit breaker`,
    );
  }
  return { backend, endpoint };
}

/** An available endpoint of `b`, other than `avoid` when another is available. */
export function pickEndpoint(b: BackendTarget, avoid?: string): Endpoint | undefined {
  if (avoid === undefined || b.balancer.endpoints.length < 2) return pickAvailable(b.balancer, b.breakers);
  // A retry: a few picks for another endpoint; else any available one (the same, if it is the only one).
  for (let i = 0; i < 4; i++) {
    const e = b.balancer.pick();
    if (e === undefined) return undefined;
    if (e.key !== avoid && b.breakers.isAvailable(e.key)) {
      b.breakers.get(e.key).dispatched();
      return e;
    }
  }
  for (const e of b.balancer.endpoints) {
    if (e.key !== avoid && b.breakers.isAvailable(e.key)) {
      b.breakers.get(e.key).dispatched();
      return e;
    }
  }
  return pickAvailable(b.balancer, b.breakers);
}

/** The error for a pick of `b` that found no endpoint: NO_ENDPOINTS when it has none, else
 *  ENDPOINTS_EJECTED (503: every endpoint is ejected by its breaker). */
export function noEndpoint(b: BackendTarget, label: string): ProxyError {
  if (b.balancer.endpoints.length === 0) return new ProxyError(Codes.NO_ENDPOINTS, `${label}: no ready endpoints`);
  return new ProxyError(
    Codes.ENDPOINTS_EJECTED,
    `${label}: every endpoint of ${b.service} is ejected by its circuit breaker`,
  );
}

/** The refusal of a request its destination has no slot and no queue room for (./limit.ts). */
export function queueFull(limit: InFlightLimit, label: string): ProxyError {
  return new ProxyError(
    Codes.QUEUE_FULL,
    `${label}: ${limit.maxInFlight} requests in flight and ${limit.maxQueued} waiting: the queue is full`,
  );
}

/** An attempt ended without a verdict (its client left): a probe must not stay in flight forever. */
export function abandonBreaker(b: BackendTarget, key: string): void {
  b.breakers.get(key).abandoned();
}

/** Tells an endpoint's breaker how an attempt went; true when this failure ejected it. */
export function feedBreaker(b: BackendTarget, key: string, failed: boolean): boolean {
  const br = b.breakers.get(key);
  if (!failed) {
    br.success();
    return false;
  }
  const was = br.ejections;
  br.failure();
  return br.ejections > was;
}
