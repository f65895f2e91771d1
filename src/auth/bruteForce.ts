// Brute-force protection of login, with rate-limiter-flexible's MySQL store on the service's own
// database, so every worker and every host counts in the same rows:
//
// - consecutive failures per username and client IP: the attempt is counted *before* the
//   password is checked (one atomic upsert), so concurrent attempts on any number of workers
//   cannot try more than LOGIN_MAX_FAILURES passwords; attempt LOGIN_MAX_FAILURES + 1 blocks the
//   pair for LOGIN_BLOCK_SECONDS, the right password included; a success resets the pair;
// - failures per client IP per day, over any usernames: after LOGIN_MAX_FAILURES_PER_IP of them
//   the IP is refused until 24 h after its first failure.
//
// The library was chosen over hand-written counters because it already has the atomic
// upsert-and-read, the block-once-on-crossing logic and the expiry clean-up, and is widely used.
// Its statements run on Database.lender(): bounded waits, per-statement timeouts, the circuit
// breaker. Failing open would hand an attacker unlimited attempts whenever the store fails, so a
// store failure is a 503 (login needs the database anyway), and never a hang: each call has a
// deadline.
import { createHash } from 'node:crypto';
import { RateLimiterMySQL, RateLimiterRes } from 'rate-limiter-flexible';
import type { ConnectionLender } from '../db/database';
import { DatabaseUnavailableError, describeDbError } from '../db/errors';
import type { Logger } from '../logger';
import { DeadlineError, withDeadline } from '../util/async';

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
 * A key part for the username, case-folded like the unique key of users. Names that could not be
 * a registered username (and might not fit the ASCII key column) are hashed.
 */
function usernameKey(username: string): string {
  const folded = username.toLowerCase();
  return /^[\x21-\x7e]{1,64}$/.test(folded) ? folded : `#${createHash('sha256').update(folded).digest('hex').slice(0, 40)}`;
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
      // The IP's day starts at its first failure; once it is used up, the IP waits for its end.
      duration: DAY_SECONDS,
      clearExpiredByTimeout: false,
    });
  }

  /**
   * Before the password is checked: undefined when the attempt may go ahead (it has been
   * counted), else the block in force.
   */
  async admit(username: string, ip: string): Promise<LoginBlock | undefined> {
    const address = await this.call(this.addresses.get(ip));
    // Like the pair's limit: that many failures are allowed, the next attempt is refused.
    if (address !== null && address.consumedPoints >= this.settings.maxFailuresPerIpPerDay) {
      return { scope: 'address', retryAfterSeconds: seconds(address.msBeforeNext) };
    }
    const refused = await this.call(this.pairs.consume(this.pairKey(username, ip))).then(
      () => undefined,
      (error: unknown) => {
        if (error instanceof RateLimiterRes) return error;
        throw error;
      },
    );
    return refused === undefined ? undefined : { scope: 'account', retryAfterSeconds: seconds(refused.msBeforeNext) };
  }

  /** A wrong password: counts against the IP's day (the pair's attempt is already counted). */
  async recordFailure(ip: string): Promise<void> {
    await this.call(this.addresses.consume(ip)).catch((error: unknown) => {
      // Over the limit now: the next attempt from this IP is refused.
      if (!(error instanceof RateLimiterRes)) throw error;
    });
  }

  /**
   * The attempt ended without a verdict on the password (a server-side failure): give back the
   * attempt counted by admit(), so an outage cannot lock users out. Best effort.
   */
  async refund(username: string, ip: string): Promise<void> {
    await this.call(this.pairs.reward(this.pairKey(username, ip), 1)).catch((error: unknown) => {
      this.log.warn(`Could not give back the login attempt of user: ${username} from ${ip} (${describeDbError(error)})`);
    });
  }

  /** The right password: the pair starts afresh. The login succeeds even if this fails. */
  async recordSuccess(username: string, ip: string): Promise<void> {
    await this.call(this.pairs.delete(this.pairKey(username, ip))).catch((error: unknown) => {
      this.log.warn(`Could not reset the failed-login count of user: ${username} from ${ip} (${describeDbError(error)})`);
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
