// Requests per client IP per minute, for every worker and host together, at almost no cost per
// request. A database round trip per request would cost more than the requests themselves, so:
//
// - each worker counts locally and decides at once from what it knows: the shared total of the
//   client's current minute (as of the last sync) plus what it admitted since;
// - every SYNC_INTERVAL_MS it adds its new counts to the shared table in one statement and reads
//   back the totals of those clients; a client near its limit (past half of it) is synced after
//   each request instead (one sync in flight at a time), so near the limit the count is close
//   to exact;
// - over-admission is bounded by what the *other* workers admit to one client between two of
//   this worker's syncs (at most one interval, or one round trip near the limit);
// - windows are aligned minutes (floor(now / 60 s)), so all workers agree on them unasked;
// - a refused request is not counted and costs no database work: a flood stays in memory;
// - when the database is unreachable, counts stay local: each worker then enforces the limit on
//   its own (a client may get up to one limit per worker) instead of refusing everyone.
import { rateLimitRejections } from '../metrics/counters';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestCountStore } from '../db/requestCounts';
import type { Logger } from '../logger';
import type { ClientIpResolver } from './clientIp';
import { RATE_LIMIT_EXEMPT_PATHS, pathOf } from './paths';
import { requestIdOf, sendJsonBeforeRouting } from './respond';
import { clientText } from '../util/clientText';
import { messageOf } from '../util/errors';

export const WINDOW_MS = 60_000;
/** The refused request's path is the client's text: bounded in the log line. */
const MAX_LOGGED_PATH_CHARS = 120;
const SYNC_INTERVAL_MS = 250;

interface RateDecision {
  readonly allowed: boolean;
  readonly limit: number;
  readonly remaining: number;
  /** When the current window ends (ms since epoch). */
  readonly resetAt: number;
  /** True for the first refusal of this client in this window (log once, not per request). */
  readonly firstRefusal: boolean;
}

export class SharedRateLimiter {
  private windowStart = 0;
  /** Shared totals as of the last sync (our own synced counts included). */
  private known = new Map<string, number>();
  /** Admitted here since the last sync. */
  private pending = new Map<string, number>();
  /** Admitted here and on its way to the store (not yet in `known`). */
  private sending = new Map<string, number>();
  private refused = new Set<string>();
  private syncing = false;
  private syncAgain = false;
  private storeDown = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly limit: number,
    private readonly store: RequestCountStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.sync(), SYNC_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  take(client: string): RateDecision {
    this.rollWindow();
    const resetAt = this.windowStart + WINDOW_MS;
    const pending = this.pending.get(client) ?? 0;
    const used = (this.known.get(client) ?? 0) + (this.sending.get(client) ?? 0) + pending;
    if (used >= this.limit) {
      const firstRefusal = !this.refused.has(client);
      if (firstRefusal) this.refused.add(client);
      return { allowed: false, limit: this.limit, remaining: 0, resetAt, firstRefusal };
    }
    this.pending.set(client, pending + 1);
    if (used + 1 >= this.limit / 2) void this.sync();
    return { allowed: true, limit: this.limit, remaining: this.limit - used - 1, resetAt, firstRefusal: false };
  }

  /** Sends the pending counts and learns the shared totals; one at a time, coalescing callers. */
  async sync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.rollWindow();
    if (this.pending.size === 0) return;
    this.syncing = true;
    const windowStart = this.windowStart;
    const batch = this.pending;
    this.sending = batch;
    this.pending = new Map();
    try {
      const totals = await this.store.add(windowStart, batch);
      if (this.storeDown) this.log.info('Rate limit store reachable again; counting for all workers together');
      this.storeDown = false;
      if (windowStart === this.windowStart) for (const [client, total] of totals) this.known.set(client, total);
    } catch (error) {
      if (!this.storeDown) {
        this.log.warn(`Rate limit store unreachable (${messageOf(error)}); limiting per worker until it is back`);
      }
      this.storeDown = true;
      if (windowStart === this.windowStart) {
        for (const [client, count] of batch) this.known.set(client, (this.known.get(client) ?? 0) + count);
      }
    } finally {
      if (this.sending === batch) this.sending = new Map();
      this.syncing = false;
    }
    if (this.syncAgain) {
      this.syncAgain = false;
      await this.sync();
    }
  }

  private rollWindow(): void {
    const windowStart = Math.floor(this.now() / WINDOW_MS) * WINDOW_MS;
    if (windowStart === this.windowStart) return;
    const first = this.windowStart === 0;
    this.windowStart = windowStart;
    this.known = new Map();
    this.pending = new Map();
    this.sending = new Map();
    this.refused = new Set();
    // Each worker tidies up once a minute (a range delete on the key's prefix), keeping the
    // minute just ended for hosts whose clocks are a little behind.
    if (!first) this.store.purgeBefore(windowStart - WINDOW_MS).catch(() => undefined);
  }
}

/**
 * A restify `first` handler (the cheapest hook: no handler chain): counts the request, sets the
 * X-RateLimit-* headers once the client is past half of its limit, and answers 429 itself when
 * the client is over it.
 */
export function rateLimitHandler(
  limiter: SharedRateLimiter,
  clientIp: ClientIpResolver,
  log: Logger,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  // Header values that change once a minute at most are made once.
  const limitHeader = String(limiter.limit);
  const halfLimit = limiter.limit / 2;
  let resetAt = 0;
  let resetHeader = '';
  return (req, res) => {
    if (RATE_LIMIT_EXEMPT_PATHS.has(pathOf(req.url))) return true;
    const client = clientIp(req);
    const decision = limiter.take(client);
    // The headers are most of the limiter's cost per request (measured: setting them costs more
    // than counting), so they go only where they tell something: once a client has used half of
    // its minute, and on every refusal.
    if (decision.remaining < halfLimit) {
      if (decision.resetAt !== resetAt) {
        resetAt = decision.resetAt;
        resetHeader = String(Math.ceil(resetAt / 1000));
      }
      res.setHeader('X-RateLimit-Limit', limitHeader);
      res.setHeader('X-RateLimit-Remaining', String(decision.remaining));
      res.setHeader('X-RateLimit-Reset', resetHeader);
    }
    if (decision.allowed) return true;

    rateLimitRejections.inc({ limiter: 'ip' });
    const retryAfter = Math.max(1, Math.ceil((decision.resetAt - Date.now()) / 1000));
    const requestId = requestIdOf(req, res);
    // The envelope is built directly: no Error object (and stack trace) per refused request.
    const message = `Too many requests; try again in ${retryAfter} s`;
    if (decision.firstRefusal) {
      // Once per client and minute: a flood must not turn into a flood of log lines.
      log.warn(
        `Request ${requestId} ${clientText(req.method ?? '', 16)} ${clientText(pathOf(req.url), MAX_LOGGED_PATH_CHARS)} answered 429 TooManyRequests: ` +
          `client ${client} passed ${decision.limit} requests per minute; refusing until the minute ends (${retryAfter} s)`,
      );
    }
    const headers: Record<string, string> = { 'Retry-After': String(retryAfter) };
    // A refused request's body is never read: close rather than read and discard an upload.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
      headers['Connection'] = 'close';
    }
    sendJsonBeforeRouting(res, 429, { code: 'TooManyRequests', message, requestId }, headers);
    return false;
  };
}
