// Brute-force protection of login, with rate-limiter-flexible's MySQL store on the service's own
// database, so every worker and every host counts in the same rows. Both limits count an attempt
// *before* the password is checked, each in one atomic upsert-and-read, so no number of concurrent
// attempts on any number of workers gets more passwords judged than the limit:
//
// - consecutive failures per username and client IP: attempt LOGIN_MAX_FAILURES + 1 blocks the
//   pair for LOGIN_BLOCK_SECONDS, the right password included; a success resets the pair. The
//   username part is the canonical key of src/api/auth/username.ts, the same that finds the account,
//   so no spelling of a name ("ALICE", "ａｌｉｃｅ") reaches an account under a counter of its own,
//   and imitations that reach none ("alice ") count with it too;
// - failures per client IP per day, over any usernames: the attempt is taken from the IP's day
//   budget up front and given back on success, when the pair's limit refuses it, or when no
//   verdict was reached (the database failed). After LOGIN_MAX_FAILURES_PER_IP failures (attempts
//   in flight included) the IP is refused until 24 h after its first attempt.
//
// The library was chosen over hand-written counters because it already has the atomic
// upsert-and-read, the block-once-on-crossing logic and the expiry clean-up, and is widely used.
// Its statements run on Database.lender(): bounded waits, per-statement timeouts, the circuit
// breaker. Failing open would hand an attacker unlimited attempts whenever the store fails, so a
// store failure is a 503 (login needs the database anyway), and never a hang: each call has a
// deadline.
import { createHash } from 'node:crypto';
import { RateLimiterMySQL, RateLimiterRes } from 'rate-limiter-flexible';
import type { ConnectionLender } from '../../platform/db/database';
import { usernameCounterKey } from './username';
import { DatabaseUnavailableError, describeDbError } from '../../platform/db/errors';
import type { Logger } from '../../platform/logging/logger';
import { DeadlineError, withDeadline } from '../../platform/util/async';
import { clientText } from '../../platform/util/clientText';

export interface LoginGuardSettings {
  /** Consecutive failures per username and IP before the pair is blocked. */
  readonly maxFailures: number;
  readonly blockSeconds: number;
  /** Failures per IP per day (any usernames) before the IP is refused until its day is over. */
  readonly maxFailuresPerIpPerDay: number;
  /** Bound on each call to the store. */
  readonly timeoutMs: number;
}

export interface LoginBlock {
  /** 'account': this username from this IP; 'address': everything from this IP. */
  readonly scope: 'account' | 'address';
  readonly retryAfterSeconds: number;
}

const LOGIN_LIMITS_TABLE = 'login_limits';
const DAY_SECONDS = 24 * 3600;

/**
 * A key part for the username: its canonical key, the one the account is found by (see
 * usernameCounterKey). Keys that are not short printable ASCII (and might not fit the ASCII key
 * column) are hashed; "#" marks a hash, so ASCII keys starting with it are hashed too and cannot
 * pose as one.
 */
function usernameKey(username: string): string {
  const key = usernameCounterKey(username);
  return /^[\x21\x22\x24-\x7e][\x21-\x7e]{0,63}$/.test(key) ? key : `#${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

export class LoginGuard {
  private readonly pairs: RateLimiterMySQL;
  private readonly addresses: RateLimiterMySQL;

  constructor(
    lender: ConnectionLender,
    databaseName: string,
    private readonly settings: LoginGuardSettings,
    private readonly log: Logger,
  ) {
    const common = {
      storeClient: lender,
      storeType: 'pool',
      dbName: databaseName,
      tableName: LOGIN_LIMITS_TABLE,
      // The table is made by migration 003, not by the library at run time.
      tableCreated: true,
    };
    this.pairs = new RateLimiterMySQL({
      ...common,
      keyPrefix: 'login_pair',
      points: settings.maxFailures,
      // A pair's count lives a day from its first failure (or until a success or a block ends).
      duration: DAY_SECONDS,
      blockDuration: settings.blockSeconds,
      // Deletes expired rows of the whole table every 5 minutes; once is enough.
      clearExpiredByTimeout: true,
    });
    this.addresses = new RateLimiterMySQL({
      ...common,
      keyPrefix: 'login_ip',
      points: settings.maxFailuresPerIpPerDay,
      // The IP's day starts at its first attempt; once it is used up, the IP waits for its end.
      duration: DAY_SECONDS,
      clearExpiredByTimeout: false,
    });
  }

  /**
   * Before the password is checked: undefined when the attempt may go ahead (it has been counted
   * against the IP's day and the pair), else the block in force. A wrong password needs nothing
   * more: the attempt stays counted.
   */
  async admit(username: string, ip: string): Promise<LoginBlock | undefined> {
    // Like the pair's limit: that many attempts pass, the next is refused. The IP first, so a
    // refused IP costs the pair nothing.
    const address = await this.consume(this.addresses, ip);
    if (address) return { scope: 'address', retryAfterSeconds: seconds(address.msBeforeNext) };
    let pair: RateLimiterRes | undefined;
    try {
      pair = await this.consume(this.pairs, this.pairKey(username, ip));
    } catch (error) {
      // The store failed: answer the 503 now, not after another wait on it.
      void this.giveBack(this.addresses, ip, `the login attempt from ${ip}`);
      throw error;
    }
    if (!pair) return undefined;
    // No password was tried: it is not a failure of the IP's day.
    await this.giveBack(this.addresses, ip, `the login attempt from ${ip}`);
    return { scope: 'account', retryAfterSeconds: seconds(pair.msBeforeNext) };
  }

  /**
   * The attempt ended without a verdict on the password (a server-side failure): give back what
   * admit() counted, so an outage cannot lock users out. Best effort.
   */
  async refund(username: string, ip: string): Promise<void> {
    await Promise.all([
      this.giveBack(this.pairs, this.pairKey(username, ip), `the login attempt of user: ${clientText(username, 64)} from ${ip}`),
      this.giveBack(this.addresses, ip, `the login attempt from ${ip}`),
    ]);
  }

  /**
   * The right password: the pair starts afresh and the attempt leaves the IP's day (it was no
   * failure). The login succeeds even if this fails.
   */
  async recordSuccess(username: string, ip: string): Promise<void> {
    await Promise.all([
      this.call(this.pairs.delete(this.pairKey(username, ip))).catch((error: unknown) => {
        this.log.warn(`Could not reset the failed-login count of user: ${clientText(username, 64)} from ${ip} (${describeDbError(error)})`);
      }),
      this.giveBack(this.addresses, ip, `the login attempt from ${ip}`),
    ]);
  }

  /** One atomic count; the refusal when it went over the limit, else undefined. */
  private consume(limiter: RateLimiterMySQL, key: string): Promise<RateLimiterRes | undefined> {
    return this.call(limiter.consume(key)).then(
      () => undefined,
      (error: unknown) => {
        if (error instanceof RateLimiterRes) return error;
        throw error;
      },
    );
  }

  /** Best effort: a failure is logged, never thrown (what it would cost is one attempt too many counted). */
  private async giveBack(limiter: RateLimiterMySQL, key: string, what: string): Promise<void> {
    await this.call(limiter.reward(key, 1)).catch((error: unknown) => {
      this.log.warn(`Could not give back ${what} (${describeDbError(error)})`);
    });
  }

  private pairKey(username: string, ip: string): string {
    return `${ip}/${usernameKey(username)}`;
  }

  /**
   * The store's answer within the deadline. A refusal (RateLimiterRes) passes through as is;
   * any failure becomes DatabaseUnavailableError, a 503.
   */
  private call<T>(operation: Promise<T>): Promise<T> {
    const { timeoutMs } = this.settings;
    return withDeadline(operation, timeoutMs).catch((error: unknown) => {
      if (error instanceof RateLimiterRes || error instanceof DatabaseUnavailableError) throw error;
      if (error instanceof DeadlineError) throw new DatabaseUnavailableError(`Login limiter store: no answer within ${timeoutMs} ms`);
      throw new DatabaseUnavailableError(`Login limiter store failed: ${describeDbError(error)}`, { cause: error });
    });
  }
}
