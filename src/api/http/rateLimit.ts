// Requests per client IP per minute, for every worker and host together, at almost no cost per
// request, and never more than the limit plus a small stated margin. A database round trip per
// request would cost more than the requests themselves, so:
//
// - each worker counts locally and decides at once from what it knows: the shared total of the
//   client's current minute (as of its last sync) plus what it admitted since ("unconfirmed");
// - every SYNC_INTERVAL_MS it adds its new counts to the shared table in one statement and reads
//   back the totals of those clients and of every client that has used half of its limit (all
//   workers together), so a worker knows such a client within one interval even if it never
//   served it: the X-RateLimit-* headers, promised from half the limit on, rest on that. A client
//   past half of its limit is synced after each request instead (one sync in flight at a time,
//   coalescing the callers);
// - a worker admits at most `allowance` requests of one client that the shared table has not
//   confirmed yet. The next request of that client is held (not refused) until the worker's sync
//   answers, and is then admitted or refused with what the sync told. So the shared count can
//   never fall more than `allowance` behind any worker's admissions;
// - bound: in one window, a client is admitted at most limit + (workers − 1) × allowance times.
//   Why: take the worker z whose last admission was decided on the most recent shared read r.
//   z admitted only while (shared total at r) + (its own unconfirmed) < limit, so z's admissions
//   plus everything the others had confirmed by r stay within the limit; every other worker v
//   decided its last admission on a read no later than r, with fewer than `allowance`
//   unconfirmed, so all v admitted beyond what r saw is at most `allowance`. allowance =
//   max(1, floor(limit / (10 × (workers − 1)))) makes that at most 10 % over the limit. Near the
//   limit a worker goes ahead by no more than half its share of what is left (ceil(left /
//   (2 × workers))): its view of what is left may be a round trip old, and the others', too;
// - `workers` is this host's API_INSTANCES: the bound (10 %) is for the workers of one host. With
//   H hosts of N workers sharing the database, each sized for N, it is limit + (H·N − 1) ×
//   allowance, about H × 10 % over (for N ≥ 2). Sizing for every host is a later change;
// - windows are aligned minutes (floor(now / 60 s)), so all workers agree on them unasked; the
//   bound holds per window: a burst straddling two minutes may get a window's worth in each;
// - a refused request is not counted and costs no database work: a flood stays in memory;
// - a held request waits HOLD_DEADLINE_MS at most. When the database is unreachable (a sync
//   failed) or slow (a held request's deadline passed before a sync answered), counts stay local:
//   each worker then enforces the limit on its own (a client may get up to one limit per worker)
//   instead of refusing everyone or holding requests for a sync that cannot confirm anything,
//   until a sync answers again.
import os from 'node:os';
import type { ApiCounters } from '../metrics/counters';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestCountStore } from '../store/requestCounts';
import type { Logger } from '../../platform/logging/logger';
import type { ClientIpResolver } from './clientIp';
import { RATE_LIMIT_EXEMPT_PATHS, pathOf } from './paths';
import { requestIdOf, type ResponseWriter } from './respond';
import { clientText } from '../../platform/util/clientText';
import { messageOf } from '../../platform/util/errors';

export const WINDOW_MS = 60_000;
/** The refused request's path is the client's text: bounded in the log line. */
const MAX_LOGGED_PATH_CHARS = 120;
export const SYNC_INTERVAL_MS = 250;
/** The over-admission the allowance is sized for: a tenth of the limit. */
const MARGIN_DIVISOR = 10;
/**
 * The longest a request is held for a sync. A sync is one round trip (a few ms); one that has not
 * answered in a second is a slow database, and a client must not pay for it: its held requests are
 * decided on the worker's own counts, as when the database is down. (The database's own bound,
 * DB_QUERY_TIMEOUT_MS per wait for a connection and per statement, can be seconds or minutes.)
 */
export const HOLD_DEADLINE_MS = 1000;
/**
 * Requests one worker holds in all, whatever the clients: a memory bound only (each is an open
 * socket and its request). Each client holds at most its remaining budget and a quarter of this,
 * so it takes four clients bursting at once to reach it; past it, a bursting client is refused.
 */
const MAX_HELD = 4000;
const MAX_HELD_PER_CLIENT = MAX_HELD / 4;

/**
 * How many requests of one client a worker may admit before the shared count confirms them, so
 * that `workers` workers together admit at most a tenth over `limit` (see the bound above). One
 * worker alone is sized as if it had a peer: the service may run on several hosts.
 */
export function unconfirmedAllowance(limit: number, workers: number): number {
  return Math.max(1, Math.floor(limit / (MARGIN_DIVISOR * Math.max(1, workers - 1))));
}

/** The api workers this host runs (API_INSTANCES; 'max' is one per core, as PM2 counts them). */
export function workersOnThisHost(instances: number | 'max'): number {
  return instances === 'max' ? os.cpus().length : instances;
}

export interface RateDecision {
  /** admit: serve it now; refuse: answer 429; wait: decide again after this worker's next sync. */
  readonly verdict: 'admit' | 'refuse' | 'wait';
  readonly limit: number;
  readonly remaining: number;
  /** When the current window ends (ms since epoch). */
  readonly resetAt: number;
  /** True for the first refusal of this client in this window (log once, not per request). */
  readonly firstRefusal: boolean;
}

export interface RateLimiterOptions {
  /** Workers that share the store (this host's: see the bound above): sizes the unconfirmed allowance. */
  readonly workers: number;
  readonly now?: () => number;
  /** The longest a request is held for a sync (HOLD_DEADLINE_MS unless the database's own timeout is shorter). */
  readonly holdDeadlineMs?: number;
}

export class SharedRateLimiter {
  /** Admissions of one client this worker may make ahead of the shared count's confirmation. */
  readonly allowance: number;
  readonly holdDeadlineMs: number;
  /** Twice the workers that race for a client's last requests (at least 2, as for the allowance). */
  private readonly shareDivisor: number;
  readonly now: () => number;
  private windowStart = 0;
  /** Shared totals as of the last sync (our own synced counts included). */
  private known = new Map<string, number>();
  /** Admitted here since the last sync. */
  private pending = new Map<string, number>();
  /** Admitted here and on its way to the store (not yet in `known`). */
  private sending = new Map<string, number>();
  private refused = new Set<string>();
  private overflowed = new Set<string>();
  /** The sync in flight (with the ones asked for meanwhile). */
  private running: Promise<void> | undefined;
  private syncAgain = false;
  private storeDown = false;
  /** A held request's deadline passed before a sync answered: decide locally until one does. */
  private storeSlow = false;
  /** Called once when the sync in flight (or the next one) has answered: held requests. */
  private afterSyncCallbacks: Array<() => void> = [];
  /** Called on every tick of the timer, a sync in flight or not: the hold deadlines. */
  private tickCallbacks: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly limit: number,
    private readonly store: RequestCountStore,
    private readonly log: Logger,
    options: RateLimiterOptions,
  ) {
    this.allowance = unconfirmedAllowance(limit, options.workers);
    this.shareDivisor = 2 * Math.max(2, options.workers);
    this.now = options.now ?? Date.now;
    this.holdDeadlineMs = options.holdDeadlineMs ?? HOLD_DEADLINE_MS;
  }

  start(): void {
    // Every tick syncs (or, with nothing to send, reads the clients past half of their limit) and
    // checks the held requests' deadlines, whether or not a sync is in flight.
    this.timer ??= setInterval(() => this.tick(), SYNC_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One timer tick; public for tests that move a fake clock. */
  tick(): void {
    this.syncInBackground(true);
    this.runCallbacks(this.tickCallbacks.slice(), 'a tick callback');
  }

  /**
   * Counts the request if it may be admitted. `mayWait: false` (a held request past its deadline)
   * decides on what this worker knows, as when the database is down.
   */
  take(client: string, mayWait = true): RateDecision {
    this.rollWindow();
    const resetAt = this.windowStart + WINDOW_MS;
    const pending = this.pending.get(client) ?? 0;
    const unconfirmed = (this.sending.get(client) ?? 0) + pending;
    const known = this.known.get(client) ?? 0;
    const used = known + unconfirmed;
    if (used >= this.limit) {
      return { verdict: 'refuse', limit: this.limit, remaining: 0, resetAt, firstRefusal: this.firstOf(this.refused, client) };
    }
    // Near the limit each worker goes ahead by half its share of what is left at most, so
    // workers racing for a client's last requests on views a round trip old overshoot little.
    const ahead = Math.min(this.allowance, Math.max(1, Math.ceil((this.limit - known) / this.shareDivisor)));
    if (unconfirmed >= ahead && mayWait && !this.storeDown && !this.storeSlow) {
      this.syncInBackground();
      return { verdict: 'wait', limit: this.limit, remaining: this.limit - used, resetAt, firstRefusal: false };
    }
    this.pending.set(client, pending + 1);
    if (used + 1 >= this.limit / 2 || unconfirmed + 1 >= ahead) this.syncInBackground();
    return { verdict: 'admit', limit: this.limit, remaining: this.limit - used - 1, resetAt, firstRefusal: false };
  }

  /** Calls `callback` once, when the sync in flight or the next one has answered (or failed). */
  afterSync(callback: () => void): void {
    this.afterSyncCallbacks.push(callback);
  }

  /** Calls `callback` on every tick of the timer (see start). */
  onTick(callback: () => void): void {
    this.tickCallbacks.push(callback);
  }

  /** A held request waited past its deadline: the store is slow; decide locally until a sync answers. */
  markStoreSlow(): void {
    if (this.storeSlow || this.storeDown) return;
    this.storeSlow = true;
    this.log.warn(
      `Rate limit store slow (no answer within ${this.holdDeadlineMs} ms); limiting per worker until it answers`,
    );
  }

  /** sync() for callers that cannot wait: it never rejects (see sync), so nothing goes unhandled. */
  private syncInBackground(readShared = false): void {
    this.sync(readShared).catch((error: unknown) => this.log.error(`Rate limit sync failed: ${messageOf(error)}`));
  }

  /**
   * Sends the pending counts and learns the shared totals of those clients and of every client
   * past half of its limit; one at a time, coalescing callers: resolves once the counts pending
   * at the call are in the store (or the store failed). Never rejects. With nothing to send, it
   * reads only when `readShared` (the timer's ticks); otherwise it just wakes the held requests.
   */
  sync(readShared = false): Promise<void> {
    if (this.running !== undefined) {
      this.syncAgain = true;
      return this.running;
    }
    this.running = this.syncWhileAsked(readShared);
    return this.running;
  }

  private async syncWhileAsked(readShared: boolean): Promise<void> {
    try {
      let read = readShared;
      do {
        this.syncAgain = false;
        await this.syncOnce(read);
        read = false;
      } while (this.syncAgain);
    } finally {
      // In the same turn as the last check of syncAgain: no caller can be left unsynced.
      this.running = undefined;
    }
  }

  private async syncOnce(readShared: boolean): Promise<void> {
    this.rollWindow();
    if (this.pending.size === 0 && !readShared) {
      this.runAfterSync();
      return;
    }
    const windowStart = this.windowStart;
    const batch = this.pending;
    this.sending = batch;
    this.pending = new Map();
    try {
      const totals = await this.store.add(windowStart, batch, Math.ceil(this.limit / 2));
      if (this.storeDown || this.storeSlow) this.log.info('Rate limit store answering again; counting for all workers together');
      this.storeDown = false;
      this.storeSlow = false;
      if (windowStart === this.windowStart) {
        // Shared totals only grow within a window: a read never lowers what is known.
        for (const [client, total] of totals) if (total > (this.known.get(client) ?? 0)) this.known.set(client, total);
      }
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
    }
    // Held requests are decided on the newest totals before the next batch leaves, so what
    // they are admitted now travels with it.
    this.runAfterSync();
  }

  private runAfterSync(): void {
    if (this.afterSyncCallbacks.length === 0) return;
    const callbacks = this.afterSyncCallbacks;
    this.afterSyncCallbacks = [];
    this.runCallbacks(callbacks, 'an after-sync callback');
  }

  /** Each callback on its own: one that throws must not drop the others (their requests would hang). */
  private runCallbacks(callbacks: ReadonlyArray<() => void>, what: string): void {
    for (const callback of callbacks) {
      try {
        callback();
      } catch (error) {
        this.log.error(`Rate limit: ${what} failed: ${messageOf(error)}`);
      }
    }
  }

  /**
   * Whether this is the client's first request this minute refused for having too many held
   * already (logged once a minute, like the limit's own refusals).
   */
  firstOverflow(client: string): boolean {
    this.rollWindow();
    return this.firstOf(this.overflowed, client);
  }

  /** Adds the client to this minute's set; true when it was not there yet. */
  private firstOf(set: Set<string>, client: string): boolean {
    if (set.has(client)) return false;
    set.add(client);
    return true;
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
    this.overflowed = new Set();
    // Each worker tidies up once a minute (a range delete on the key's prefix), keeping the
    // minute just ended for hosts whose clocks are a little behind.
    if (!first) this.store.purgeBefore(windowStart - WINDOW_MS).catch(() => undefined);
  }
}

const RESUMED = Symbol('admitted by the rate limit after waiting for a sync');

/**
 * True for a request the rate limit held while its client's count was confirmed and then handed
 * back to the server: the `first` handlers have seen it already (arrival, id, overload guard).
 */
export function isResumedByRateLimit(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [RESUMED]?: true })[RESUMED] === true;
}

interface Held {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly client: string;
  /** limiter.now() when it was first held: its deadline is heldSince + holdDeadlineMs. */
  readonly heldSince: number;
  /** Taken out of the queue (the client left, or it was decided at its deadline). */
  done: boolean;
  readonly onClose: () => void;
}

/** True when no answer can reach the client any more (it left, or something answered already). */
function answerCannotLeave(req: IncomingMessage, res: ServerResponse): boolean {
  return res.writableEnded || res.headersSent || res.destroyed || req.readableAborted || req.socket.destroyed || !req.socket.writable;
}

/** The handler, and how many requests it holds right now (for tests and diagnostics). */
export type RateLimitHandler = ((req: IncomingMessage, res: ServerResponse) => boolean) & { readonly held: () => number };

/** How the rate limit answers and counts. */
export interface RateLimitAnswers {
  /** Writes the 429s (and a 500 when a held request cannot be handed back). */
  readonly writer: Pick<ResponseWriter, 'sendJsonBeforeRouting'>;
  readonly counters: Pick<ApiCounters, 'rateLimitRejections' | 'rateLimitHeld'>;
}

/**
 * A restify `first` handler (the cheapest hook: no handler chain): counts the request, sets the
 * X-RateLimit-* headers once the client is past half of its limit, and answers 429 itself when
 * the client is over it. A request the limiter cannot admit before a sync (a burst past the
 * worker's unconfirmed allowance) is taken out of restify (`false`) and handed back through
 * `resume` once the sync has answered, in arrival order, or at its deadline at the latest.
 */
export function rateLimitHandler(
  limiter: SharedRateLimiter,
  clientIp: ClientIpResolver,
  log: Logger,
  resume: (req: IncomingMessage, res: ServerResponse) => void,
  answers: RateLimitAnswers,
): RateLimitHandler {
  const { writer } = answers;
  const { rateLimitRejections, rateLimitHeld } = answers.counters;
  // Header values that change once a minute at most are made once.
  const limitHeader = String(limiter.limit);
  const halfLimit = limiter.limit / 2;
  let resetAt = 0;
  let resetHeader = '';
  let held: Held[] = [];
  /** Requests held per client (for its cap), and in all. */
  const heldPerClient = new Map<string, number>();
  let heldCount = 0;
  let drainScheduled = false;

  const setLimitHeaders = (res: ServerResponse, remaining: number, windowEnd: number): void => {
    if (windowEnd !== resetAt) {
      resetAt = windowEnd;
      resetHeader = String(Math.ceil(resetAt / 1000));
    }
    res.setHeader('X-RateLimit-Limit', limitHeader);
    res.setHeader('X-RateLimit-Remaining', String(remaining));
    res.setHeader('X-RateLimit-Reset', resetHeader);
  };

  const refuse = (req: IncomingMessage, res: ServerResponse, retryAfter: number, logLine: string | undefined): void => {
    rateLimitRejections.inc({ limiter: 'ip' });
    const requestId = requestIdOf(req, res);
    // The envelope is built directly: no Error object (and stack trace) per refused request.
    const message = `Too many requests; try again in ${retryAfter} s`;
    if (logLine !== undefined) {
      // Once per client and minute: a flood must not turn into a flood of log lines.
      log.warn(
        `Request ${requestId} ${clientText(req.method ?? '', 16)} ${clientText(pathOf(req.url), MAX_LOGGED_PATH_CHARS)} answered 429 TooManyRequests: ${logLine}`,
      );
    }
    const headers: Record<string, string> = { 'Retry-After': String(retryAfter) };
    // A refused request's body is never read: close rather than read and discard an upload.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
      headers['Connection'] = 'close';
    }
    writer.sendJsonBeforeRouting(res, 429, { code: 'TooManyRequests', message, requestId }, headers);
  };

  /** Admits (true) or answers 429 (false) on a decision that is not 'wait'. */
  const apply = (req: IncomingMessage, res: ServerResponse, client: string, decision: RateDecision): boolean => {
    // The headers are most of the limiter's cost per request (measured: setting them costs more
    // than counting), so they go only where they tell something: once a client has used half of
    // its minute, and on every refusal.
    if (decision.remaining < halfLimit) setLimitHeaders(res, decision.remaining, decision.resetAt);
    if (decision.verdict === 'admit') return true;
    const retryAfter = Math.max(1, Math.ceil((decision.resetAt - Date.now()) / 1000));
    refuse(req, res, retryAfter, decision.firstRefusal
      ? `client ${client} passed ${limiter.limit} requests per minute; refusing until the minute ends (${retryAfter} s)`
      : undefined);
    return false;
  };

  /** Admits (true), answers 429 (false) or leaves the request for the next sync ('wait'). */
  const decide = (req: IncomingMessage, res: ServerResponse, client: string, mayWait: boolean): boolean | 'wait' => {
    const decision = limiter.take(client, mayWait);
    return decision.verdict === 'wait' ? 'wait' : apply(req, res, client, decision);
  };

  const release = (entry: Held): void => {
    entry.done = true;
    entry.res.off('close', entry.onClose);
    heldCount--;
    const count = (heldPerClient.get(entry.client) ?? 1) - 1;
    if (count > 0) heldPerClient.set(entry.client, count);
    else heldPerClient.delete(entry.client);
  };

  /** Decides one held request again; a failure answers it 500 rather than leave it hanging. */
  const redecide = (entry: Held, mayWait: boolean): 'wait' | 'decided' => {
    try {
      if (answerCannotLeave(entry.req, entry.res)) {
        // A client that gave up (or was answered, e.g. a request timeout) is not counted.
        rateLimitHeld.inc({ outcome: 'gone' });
        return 'decided';
      }
      const outcome = decide(entry.req, entry.res, entry.client, mayWait);
      if (outcome === 'wait') return 'wait';
      rateLimitHeld.inc({ outcome: mayWait ? (outcome ? 'admitted' : 'refused') : 'deadline' });
      if (outcome) {
        (entry.req as IncomingMessage & { [RESUMED]?: true })[RESUMED] = true;
        resume(entry.req, entry.res);
      }
    } catch (error) {
      rateLimitHeld.inc({ outcome: 'error' });
      const requestId = requestIdOf(entry.req, entry.res);
      log.error(`Request ${requestId} failed while the rate limit handed it back: ${messageOf(error)}; answered 500`);
      try {
        writer.sendJsonBeforeRouting(entry.res, 500, { code: 'InternalServer', message: 'Internal server error', requestId });
      } catch {
        // Something was written already: the client cannot get a clean answer; do not leave it waiting.
        entry.res.destroy();
      }
    }
    return 'decided';
  };

  const scheduleDrain = (): void => {
    if (drainScheduled) return;
    drainScheduled = true;
    limiter.afterSync(drain);
  };

  /** After a sync: decides the held requests again, oldest first. */
  const drain = (): void => {
    drainScheduled = false;
    const waiting = held;
    held = [];
    for (const entry of waiting) {
      if (entry.done) continue;
      if (redecide(entry, true) === 'wait') held.push(entry);
      else release(entry);
    }
    if (held.length > 0) scheduleDrain();
  };

  /**
   * On every tick, even with a sync in flight: held requests whose deadline would pass before the
   * next tick are decided now on this worker's counts (the store is slow), oldest first.
   */
  const expire = (): void => {
    if (held.length === 0) return;
    const cutoff = limiter.now() - limiter.holdDeadlineMs + SYNC_INTERVAL_MS;
    if (held[0] !== undefined && held[0].heldSince > cutoff) return;
    limiter.markStoreSlow();
    const waiting = held;
    held = [];
    for (const entry of waiting) {
      if (entry.done) continue;
      if (entry.heldSince > cutoff) {
        held.push(entry);
        continue;
      }
      redecide(entry, false);
      release(entry);
    }
  };
  limiter.onTick(expire);

  /** A client with too many requests held already: refused like any other 429, headers included. */
  const refuseOverflow = (req: IncomingMessage, res: ServerResponse, client: string, remaining: number, windowEnd: number): void => {
    const first = limiter.firstOverflow(client);
    setLimitHeaders(res, remaining, windowEnd);
    refuse(req, res, 1, first
      ? `client ${client} has ${heldPerClient.get(client) ?? 0} requests waiting for the shared count (${heldCount} on this worker); ` +
        'refusing more until they are decided (1 s)'
      : undefined);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (isResumedByRateLimit(req)) return true;
    if (RATE_LIMIT_EXEMPT_PATHS.has(pathOf(req.url))) return true;
    const client = clientIp(req);
    const decision = limiter.take(client);
    if (decision.verdict !== 'wait') return apply(req, res, client, decision);
    // A client holds no more than it could still be admitted (its remaining budget), and no
    // more than its share of the worker's bound: one client's burst never refuses another client.
    const clientHeld = heldPerClient.get(client) ?? 0;
    if (clientHeld >= Math.min(decision.remaining, MAX_HELD_PER_CLIENT) || heldCount >= MAX_HELD) {
      refuseOverflow(req, res, client, decision.remaining, decision.resetAt);
      return false;
    }
    heldPerClient.set(client, clientHeld + 1);
    heldCount++;
    const entry: Held = {
      req,
      res,
      client,
      heldSince: limiter.now(),
      done: false,
      // The client left while held: out of the queue at once, not counted.
      onClose: () => {
        if (entry.done) return;
        rateLimitHeld.inc({ outcome: 'gone' });
        release(entry);
      },
    };
    res.once('close', entry.onClose);
    held.push(entry);
    scheduleDrain();
    return false;
  };
  return Object.assign(handle, { held: () => heldCount });
}
