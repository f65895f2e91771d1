// The api's event counters and hot-path histograms, made once by the program's main
// (createApiCounters) and handed to what counts: a route, the database hooks or a rate limiter
// counts with e.g. `counters.rateLimitRejections.inc({ limiter: 'ip' })`. They belong to no
// registry until createRegistry() (registry.ts) adds them, so with METRICS_ENABLED=0 they count
// into nothing that is ever read.
import { Counter } from 'prom-client';
import { LazyHistogram } from '../../platform/metrics/lazyHistogram';

/** Route label of requests that matched no route: one series however many paths are probed. */
export const UNMATCHED_ROUTE = 'unmatched';
/** Route label of requests Node's HTTP parser refused (400, 408, 413, 431): no method or path to read. */
export const UNPARSED_ROUTE = 'unparsed';

/**
 * A counter of events by one label, in no registry. Known label values start at 0, so a series
 * exists (and rate() works) before the first event.
 */
function eventCounter<L extends string>(name: string, help: string, label: L, known: readonly string[] = []): Counter<L> {
  const counter = new Counter<L>({ name, help, labelNames: [label], registers: [] });
  for (const value of known) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  return counter;
}

export type OverloadReason = 'event_loop_delay' | 'heap' | 'db_pool_queue';

/**
 * Why an authenticated route answered 401 (its answer says only "Authentication required"):
 * no bearer credential, a token not in the exact compact form, another algorithm, a bad
 * signature, a wrong or missing claim, expired, not yet valid, a lifetime beyond the configured
 * one, a subject that is not a user id, or a user that no longer exists.
 */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'claims'
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime'
  | 'subject'
  | 'unknown_user';

/** Everything the api counts; one per process, made by main. */
export interface ApiCounters {
  /** Requests: counted and timed on the hot path without prom-client (see lazyHistogram.ts). */
  readonly httpRequests: LazyHistogram;
  /** Every statement on a pooled connection, including transaction control. */
  readonly dbQueries: LazyHistogram;
  /** result: success, wrong_password, unknown_user, throttled. */
  readonly loginAttempts: Counter<'result'>;
  /** result: created, taken. */
  readonly registrations: Counter<'result'>;
  /**
   * For the rate limiters: `{ limiter: 'ip' }` for a request refused by the per-IP limit,
   * `{ limiter: 'login' }` for a login refused by brute-force protection (which also counts
   * `loginAttempts.inc({ result: 'throttled' })`).
   */
  readonly rateLimitRejections: Counter<'limiter'>;
  /**
   * Requests the per-IP rate limit held for its shared count (a burst past a worker's allowance),
   * by how the hold ended: decided after a sync (admitted, refused), decided on the worker's own
   * counts because no sync answered within the hold deadline (deadline), the client left (gone),
   * or the request failed while being handed back (error).
   */
  readonly rateLimitHeld: Counter<'outcome'>;
  readonly dbRetries: Counter<'code'>;
  readonly dbFailures: Counter<'code'>;
  readonly overloadRejections: Counter<'reason'>;
  readonly authFailures: Counter<'reason'>;
  /** For the password hasher: a hash or a verification refused because its queue was full (answered 503). */
  readonly passwordHashRejections: Counter<'operation'>;
}

/** Every prom-client counter of `counters`, for the registry: read off the object, so none can be left out. */
export function eventCountersOf(counters: ApiCounters): Array<Counter<string>> {
  return Object.values(counters).filter((metric): metric is Counter<string> => metric instanceof Counter);
}

export function createApiCounters(): ApiCounters {
  const loginAttempts = eventCounter(
    'resilient_api_login_attempts_total',
    'Login attempts that reached a verdict, by result: success, wrong_password, unknown_user, throttled',
    'result',
    ['success', 'wrong_password', 'unknown_user', 'throttled'],
  );
  const registrations = eventCounter(
    'resilient_api_registrations_total',
    'Registrations by result: created, taken (name already in use)',
    'result',
    ['created', 'taken'],
  );
  const rateLimitRejections = eventCounter(
    'resilient_api_rate_limit_rejections_total',
    'Requests answered 429 by a rate limiter, by limiter',
    'limiter',
    ['ip', 'login'],
  );
  const rateLimitHeld = eventCounter(
    'resilient_api_rate_limit_held_total',
    'Requests the per-IP rate limit held for a sync of the shared count, by how the hold ended',
    'outcome',
    ['admitted', 'refused', 'deadline', 'gone', 'error'],
  );
  const dbRetries = eventCounter(
    'resilient_api_db_retries_total',
    'Database attempts that failed transiently and were retried, by error code',
    'code',
  );
  const dbFailures = eventCounter(
    'resilient_api_db_failures_total',
    'Database operations that failed for good after their retries (answered 503), by error code',
    'code',
  );
  const overloadRejections = eventCounter(
    'resilient_api_overload_rejections_total',
    'Requests answered 503 by the overload guard, by the limit that was passed',
    'reason',
    ['event_loop_delay', 'heap', 'db_pool_queue'] satisfies OverloadReason[],
  );
  const passwordHashRejections = eventCounter(
    'resilient_api_password_hash_rejections_total',
    'Password hashes refused because PASSWORD_HASH_QUEUE_LIMIT jobs already waited (answered 503), by operation: hash, verify',
    'operation',
    ['hash', 'verify'],
  );
  const authFailures = eventCounter(
    'resilient_api_auth_failures_total',
    'Requests refused authentication (answered 401 on an authenticated route), by reason',
    'reason',
    [
      'missing',
      'malformed',
      'algorithm',
      'signature',
      'claims',
      'expired',
      'not_yet_valid',
      'lifetime',
      'subject',
      'unknown_user',
    ] satisfies AuthFailureReason[],
  );
  return {
    httpRequests: new LazyHistogram(
      'resilient_api_http_request_duration_seconds',
      'Time from the arrival of a request to its answer, by method, route template and status',
      ['method', 'route', 'status_code'],
    ),
    dbQueries: new LazyHistogram(
      'resilient_api_db_query_duration_seconds',
      'Time of one database statement on a pooled connection, by result (ok or error)',
      ['result'],
    ),
    loginAttempts,
    registrations,
    rateLimitRejections,
    rateLimitHeld,
    dbRetries,
    dbFailures,
    overloadRejections,
    authFailures,
    passwordHashRejections,
  };
}
