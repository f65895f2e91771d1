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
  'resilient_api_http_request_duration_seconds',
  'Time from the arrival of a request to its answer, by method, route template and status',
  ['method', 'route', 'status_code'],
);

/** Every statement on a pooled connection, including transaction control. */
export const dbQueries = new LazyHistogram(
  'resilient_api_db_query_duration_seconds',
  'Time of one database statement on a pooled connection, by result (ok or error)',
  ['result'],
);

const counters: Array<Counter<string>> = [];

/**
 * A counter of events by one label. Known label values start at 0, so a series exists (and
 * rate() works) before the first event.
 */
function eventCounter<L extends string>(name: string, help: string, label: L, known: readonly string[] = []): Counter<L> {
  const counter = new Counter<L>({ name, help, labelNames: [label], registers: [] });
  for (const value of known) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  counters.push(counter);
  return counter;
}

export const loginAttempts = eventCounter(
  'resilient_api_login_attempts_total',
  'Login attempts that reached a verdict, by result: success, wrong_password, unknown_user, throttled',
  'result',
  ['success', 'wrong_password', 'unknown_user', 'throttled'],
);

export const registrations = eventCounter(
  'resilient_api_registrations_total',
  'Registrations by result: created, taken (name already in use)',
  'result',
  ['created', 'taken'],
);

/**
 * For the rate limiters: `rateLimitRejections.inc({ limiter: 'ip' })` for a request refused by
 * the per-IP limit, `{ limiter: 'login' }` for a login refused by brute-force protection (which
 * also counts `loginAttempts.inc({ result: 'throttled' })`).
 */
export const rateLimitRejections = eventCounter(
  'resilient_api_rate_limit_rejections_total',
  'Requests answered 429 by a rate limiter, by limiter',
  'limiter',
  ['ip', 'login'],
);

export const dbRetries = eventCounter(
  'resilient_api_db_retries_total',
  'Database attempts that failed transiently and were retried, by error code',
  'code',
);

export const dbFailures = eventCounter(
  'resilient_api_db_failures_total',
  'Database operations that failed for good after their retries (answered 503), by error code',
  'code',
);

export type OverloadReason = 'event_loop_delay' | 'heap' | 'db_pool_queue';

export const overloadRejections = eventCounter(
  'resilient_api_overload_rejections_total',
  'Requests answered 503 by the overload guard, by the limit that was passed',
  'reason',
  ['event_loop_delay', 'heap', 'db_pool_queue'] satisfies OverloadReason[],
);

export const eventCounters: ReadonlyArray<Counter<string>> = counters;
