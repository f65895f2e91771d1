// The service's event counters, importable from anywhere without wiring: a route, the database
// layer or a rate limiter counts with e.g. `rateLimitRejections.inc({ limiter: 'ip' })`.
// They belong to no registry until createRegistry() (registry.ts) adds them, so with
// METRICS_ENABLED=0 they count into nothing that is ever read.
import { Counter } from 'prom-client';
import { LazyHistogram } from './lazyHistogram';

/** Route label of requests that matched no route: one series however many paths are probed. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Requests: counted and timed on the hot path without prom-client (see lazyHistogram.ts). */
export const httpRequests = new LazyHistogram(
  'http_request_duration_seconds',
  'Time from the arrival of a request to its answer, by method, route template and status',
  ['method', 'route', 'status_code'],
);

/** Every statement on a pooled connection, including transaction control. */
export const dbQueries = new LazyHistogram(
  'db_query_duration_seconds',
  'Time of one database statement on a pooled connection, by result (ok or error)',
  ['result'],
);

export const loginAttempts = new Counter<'result'>({
  name: 'auth_login_attempts_total',
  help: 'Login attempts that reached a verdict, by result: success, wrong_password, unknown_user, throttled',
  labelNames: ['result'],
  registers: [],
});

export const registrations = new Counter<'result'>({
  name: 'auth_registrations_total',
  help: 'Registrations by result: created, taken (name already in use)',
  labelNames: ['result'],
  registers: [],
});

/**
 * For the rate limiters: `rateLimitRejections.inc({ limiter: 'ip' })` for a request refused by
 * the per-IP limit, `{ limiter: 'login' }` for a login refused by brute-force protection (which
 * also counts `loginAttempts.inc({ result: 'throttled' })`).
 */
export const rateLimitRejections = new Counter<'limiter'>({
  name: 'http_rate_limit_rejections_total',
  help: 'Requests answered 429 by a rate limiter, by limiter',
  labelNames: ['limiter'],
  registers: [],
});

export const dbRetries = new Counter<'code'>({
  name: 'db_retries_total',
  help: 'Database attempts that failed transiently and were retried, by error code',
  labelNames: ['code'],
  registers: [],
});

export const dbFailures = new Counter<'code'>({
  name: 'db_failures_total',
  help: 'Database operations that failed for good after their retries (answered 503), by error code',
  labelNames: ['code'],
  registers: [],
});

export type OverloadReason = 'event_loop_delay' | 'heap' | 'db_pool_queue';

export const overloadRejections = new Counter<'reason'>({
  name: 'api_overload_rejections_total',
  help: 'Requests answered 503 by the overload guard, by the limit that was passed',
  labelNames: ['reason'],
  registers: [],
});

// Known label values start at 0, so a series exists (and rate() works) before the first event.
for (const result of ['success', 'wrong_password', 'unknown_user', 'throttled']) loginAttempts.inc({ result }, 0);
for (const result of ['created', 'taken']) registrations.inc({ result }, 0);
for (const limiter of ['ip', 'login']) rateLimitRejections.inc({ limiter }, 0);
for (const reason of ['event_loop_delay', 'heap', 'db_pool_queue'] satisfies OverloadReason[]) overloadRejections.inc({ reason }, 0);

export const eventCounters: ReadonlyArray<Counter<string>> = [loginAttempts, registrations, rateLimitRejections, dbRetries, dbFailures, overloadRejections];
