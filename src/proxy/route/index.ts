// Routing on the proxy's outbound side, without sockets: the route table of a destination answer
// (Gateway API precedence), traffic splitting, filters, retries with a budget, and circuit breaking.
export {
  compileRoutes,
  matchRoute,
  headerValue,
  queryValue,
  splitTarget,
  EMPTY_TABLE,
  type RouteTable,
  type RouteRequest,
  type RouteCandidate,
  type CompiledRule,
} from './table.js';
export { chooseBackend, compileSplit, type BackendChoice, type Split } from './split.js';
export {
  compileFilters,
  modifyHeaders,
  modifyPath,
  rewriteRequest,
  redirectLocation,
  hostOf,
  shouldMirror,
  type CompiledFilters,
  type CompiledHeaderModifier,
  type CompiledMirror,
  type CompiledRedirect,
  type CompiledRewrite,
} from './filters.js';
export {
  compileRetry,
  decideRetry,
  isIdempotent,
  retryableFailure,
  retryableResponse,
  retryDelayMs,
  RetryBudget,
  MAX_RETRY_BODY_BYTES,
  RETRY_BUDGET_DEFAULTS,
  type FailureKind,
  type RetryBudgetOptions,
  type RetryDecision,
  type RetryPolicy,
  type RetryQuestion,
} from './retry.js';
export {
  Breakers,
  CircuitBreaker,
  pickAvailable,
  isEndpointFailure,
  BREAKER_DEFAULTS,
  type AvailabilityView,
  type BreakerOptions,
  type BreakerState,
} from './breaker.js';
