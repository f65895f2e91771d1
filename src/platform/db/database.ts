// The database as the rest of the service sees it: a mysql2 pool behind bounded waits,
// one retry policy, transactions that always end, and a circuit breaker fed by the monitor.
import mysql from 'mysql2';
import type { DatabaseConfig } from '../config';
import type { Logger } from '../logging/logger';
import {
  DatabaseTimeoutError,
  DatabaseUnavailableError,
  errorCode,
  type FailurePhase,
  isSafeToRetry,
  isSchemaMissing,
  isTransient,
} from './errors';
import { DatabaseMonitor } from './monitor';
import { DEFAULT_BACKOFF, withRetry } from '../util/retry';
import { asError, messageOf } from '../util/errors';

export type Params = ReadonlyArray<string | number | bigint | boolean | Date | Buffer | null>;
export type Row = Record<string, unknown>;

export interface WriteResult {
  readonly affectedRows: number;
  readonly insertId: number;
}

/** What a transaction body may do: the same statements, on one connection, no retries inside. */
export interface Queryable {
  select<T extends Row = Row>(sql: string, params?: Params): Promise<T[]>;
  modify(sql: string, params?: Params): Promise<WriteResult>;
}

/** Hooks for metrics; every one optional. */
export interface DatabaseObserver {
  onQuery?(durationSeconds: number, ok: boolean): void;
  onRetry?(code: string): void;
  onFailure?(code: string): void;
}

type Callback = (error: Error | null, result?: unknown) => void;

/** A pooled connection as lent to a library: statements with values, a rollback, a release. */
interface LentConnection {
  query(sql: string, values: Params | Callback, callback?: Callback): void;
  rollback(callback?: Callback): void;
  release(): void;
}

/** The part of mysql2's Pool that libraries such as rate-limiter-flexible's MySQL store use. */
export interface ConnectionLender {
  getConnection(callback: (error: Error | null, connection?: LentConnection) => void): void;
}

/** A pending wait (for a connection or a query result) that the breaker can cut short. */
interface Abortable {
  abort(error: Error): void;
}

class PhaseError extends Error {
  constructor(
    readonly phase: FailurePhase,
    readonly original: unknown,
  ) {
    super('tagged');
  }
}

export class Database implements Queryable {
  readonly monitor: DatabaseMonitor;
  private readonly pool: mysql.Pool;
  private readonly pending = new Set<Abortable>();
  private closing = false;
  observer: DatabaseObserver = {};
  /** Set once migrations have run; until then statements are refused with 503. */
  schemaReady = false;

  constructor(
    private readonly config: DatabaseConfig,
    private readonly log: Logger,
  ) {
    this.pool = mysql.createPool({
      host: config.host,
      port: config.port,
      user: config.user,
      password: config.password,
      database: config.database,
      connectionLimit: config.poolSize,
      connectTimeout: config.connectTimeoutMs,
      waitForConnections: true,
      // Waiting is bounded in time by acquire(); this bounds it in memory.
      queueLimit: config.poolSize * 100,
      enableKeepAlive: true,
      charset: 'utf8mb4_unicode_ci',
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
    });
    // Connections the server drops emit 'error' on the pool's connection; mysql2 removes them.
    this.pool.on('connection', (connection) => connection.on('error', () => undefined));
    this.monitor = new DatabaseMonitor(config);
    this.monitor.on('down', (reason) => {
      this.log.error(`Database unreachable (${reason}); answering 503 until it is back`);
      this.abortPending(new DatabaseUnavailableError(`Database unreachable: ${reason}`));
    });
    this.monitor.on('up', () => this.log.info('Database connection is healthy'));
  }

  /** Starts watching the database. The service works (with 503s) whether or not it answers. */
  start(): void {
    this.monitor.start();
  }

  /** Closed circuit: the schema is current and the monitor has not seen the database fail. */
  get available(): boolean {
    return this.schemaReady && !this.closing && this.monitor.state !== 'down';
  }

  /** Pool usage, for metrics and the overload guard. */
  poolStats(): { size: number; inUse: number; idle: number; waiting: number } {
    // mysql2 keeps these counts only in internal queues; read-only access, typed loosely on purpose.
    const internals = this.pool as unknown as {
      _allConnections?: { length: number };
      _freeConnections?: { length: number };
      _connectionQueue?: { length: number };
    };
    const size = internals._allConnections?.length ?? 0;
    const idle = internals._freeConnections?.length ?? 0;
    return { size, inUse: size - idle, idle, waiting: internals._connectionQueue?.length ?? 0 };
  }

  select<T extends Row = Row>(sql: string, params: Params = []): Promise<T[]> {
    return this.withRetry(sql, true, () => this.once(sql, params)) as Promise<T[]>;
  }

  modify(sql: string, params: Params = []): Promise<WriteResult> {
    return this.withRetry(sql, false, async () => toWriteResult(await this.once(sql, params)));
  }

  /**
   * Runs `body` in one transaction: commit when it resolves, roll back when anything throws.
   * The connection is released (or destroyed, if its state is unknown) in every case. A failure
   * before COMMIT was sent leaves nothing behind, so the whole transaction may be retried.
   */
  transaction<T>(body: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.withRetry('transaction', true, async () => {
      const connection = await this.acquire();
      let reusable = true;
      try {
        await this.run(connection, 'START TRANSACTION', [], false);
        const tx: Queryable = {
          select: async <R extends Row>(sql: string, params: Params = []) =>
            (await this.run(connection, sql, params)) as R[],
          modify: async (sql: string, params: Params = []) => toWriteResult(await this.run(connection, sql, params)),
        };
        const result = await body(tx);
        await this.run(connection, 'COMMIT', [], false).catch((error: unknown) => {
          throw new PhaseError('commit', error);
        });
        return result;
      } catch (error) {
        reusable = await this.rollback(connection);
        // Anything before COMMIT was sent is undone, so it counts as the safe 'execute' phase.
        throw error instanceof PhaseError ? error : new PhaseError('execute', error);
      } finally {
        if (reusable) connection.release();
        else connection.destroy();
      }
    });
  }

  /**
   * A mysql2-pool look-alike for libraries that drive connections themselves (the brute-force
   * limiter's store): the same bounded wait for a connection, the query timeout on every
   * statement, an immediate refusal while the circuit is open, and a connection whose statement
   * timed out or was cut short destroyed instead of reused. No retries: the library's own
   * transactions are not ours to repeat.
   */
  lender(): ConnectionLender {
    const lend = (connection: mysql.PoolConnection): LentConnection => {
      const query = (sql: string, values: Params | Callback, callback?: Callback): void => {
        const params = typeof values === 'function' ? [] : values;
        const done = typeof values === 'function' ? values : (callback ?? (() => undefined));
        this.run(connection, sql, params, false).then(
          (result) => done(null, result),
          (error: unknown) => {
            if (isTransient(error)) this.noteTransientFailure(`lent ${describe(sql)}`, error);
            done(asError(error));
          },
        );
      };
      return {
        query,
        rollback: (callback) => query('ROLLBACK', callback ?? (() => undefined)),
        // A destroyed connection has left the pool already; release() is then a no-op.
        release: () => connection.release(),
      };
    };
    return {
      getConnection: (callback) => {
        if (!this.available) {
          callback(new DatabaseUnavailableError());
          return;
        }
        this.acquire().then(
          (connection) => callback(null, lend(connection)),
          (error: unknown) => {
            const original = asOriginalError(error);
            if (isTransient(original)) this.noteTransientFailure('connection for a lent statement', original);
            callback(original);
          },
        );
      },
    };
  }

  /**
   * A transient failure that reached a caller: counted, logged, and the monitor asked to look
   * now, so the next callers fail fast instead of waiting.
   */
  private noteTransientFailure(what: string, error: unknown): void {
    const code = errorCode(error);
    this.observer.onFailure?.(code);
    this.log.error(`Database ${what} failed with ${code}: ${messageOf(error)}`);
    void this.monitor.check();
  }

  /** Stops the monitor, fails whatever waits, and closes the pool within the given bound. */
  async close(timeoutMs = 2000): Promise<void> {
    this.closing = true;
    this.monitor.stop();
    this.abortPending(new DatabaseUnavailableError('Database pool is closing'));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.pool.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private async withRetry<T>(label: string, idempotent: boolean, attempt: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(
        { attempts: this.config.retries, ...DEFAULT_BACKOFF },
        {
          shouldRetry: (error) =>
            error instanceof PhaseError && this.available && isSafeToRetry(error.original, error.phase, idempotent),
          onRetry: (error, failed, attempts) => {
            const code = errorCode((error as PhaseError).original);
            this.observer.onRetry?.(code);
            this.log.warn(`Database ${describe(label)} failed with ${code} (attempt ${failed} of ${attempts}); retrying`);
          },
        },
        () => {
          // A throw here becomes a rejection in withRetry, which runs every attempt inside a promise.
          if (!this.available) throw new PhaseError('connect', new DatabaseUnavailableError());
          return attempt();
        },
      );
    } catch (error) {
      const original = error instanceof PhaseError ? error.original : error;
      const code = errorCode(original);
      if (isTransient(original)) {
        this.noteTransientFailure(describe(label), original);
        throw new DatabaseUnavailableError(`Database ${code}`, { cause: original });
      }
      if (isSchemaMissing(original)) {
        this.log.error(`Database ${describe(label)} failed with ${code}: ${messageOf(original)} (a restore under way?)`);
        throw new DatabaseUnavailableError(`Database ${code}`, { cause: original });
      }
      throw original;
    }
  }

  /** One statement on a pooled connection; failures tagged with the phase they happened in. */
  private async once(sql: string, params: Params): Promise<unknown> {
    const connection = await this.acquire();
    try {
      return await this.run(connection, sql, params);
    } catch (error) {
      throw new PhaseError('execute', error);
    } finally {
      connection.release();
    }
  }

  /** A pooled connection, or a DB_POOL_TIMEOUT after DB_QUERY_TIMEOUT_MS of waiting. */
  private acquire(): Promise<mysql.PoolConnection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const waiter: Abortable = {
        abort: (error) => finish(new PhaseError('connect', error)),
      };
      const finish = (error?: Error, connection?: mysql.PoolConnection): void => {
        if (settled) {
          // The pool answered after we gave up: hand the connection straight back.
          connection?.release();
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.pending.delete(waiter);
        if (connection) resolve(connection);
        else reject(error);
      };
      const timer = setTimeout(
        () =>
          finish(
            new PhaseError(
              'connect',
              new DatabaseTimeoutError('DB_POOL_TIMEOUT', `no free connection within ${this.config.queryTimeoutMs} ms`),
            ),
          ),
        this.config.queryTimeoutMs,
      );
      this.pending.add(waiter);
      this.pool.getConnection((error, connection) => {
        if (error) finish(new PhaseError('connect', error));
        else finish(undefined, connection);
      });
    });
  }

  /**
   * One statement with a time bound. A statement that times out (or is cut short by the breaker)
   * leaves its connection in an unknown state, so the connection is destroyed, never reused.
   */
  private run(connection: mysql.PoolConnection, sql: string, params: Params, prepared = true): Promise<unknown> {
    const started = process.hrtime.bigint();
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (error: Error | null, result?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(cutter);
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.observer.onQuery?.(seconds, error === null);
        if (this.config.slowQueryMs > 0 && seconds * 1000 >= this.config.slowQueryMs) this.warnSlow(sql, seconds, error);
        if (error) reject(error);
        else resolve(result);
      };
      const cutter: Abortable = {
        abort: (error) => {
          connection.destroy();
          settle(error);
        },
      };
      const timer = setTimeout(
        () =>
          cutter.abort(
            new DatabaseTimeoutError('DB_QUERY_TIMEOUT', `query took longer than ${this.config.queryTimeoutMs} ms`),
          ),
        this.config.queryTimeoutMs,
      );
      this.pending.add(cutter);
      const callback = (error: Error | null, result?: unknown): void => settle(error, result);
      // execute(): server-side prepared statements, so values never mix with SQL text.
      // Transaction control statements cannot be prepared; a lent connection's statements use
      // mysql2's client-side placeholders (values escaped, `??` for identifiers).
      if (prepared) connection.execute(sql, [...params], callback);
      else connection.query(sql, [...params], callback);
    });
  }

  /** The statement's first words and its time; never its values (they travel apart, as parameters). */
  private warnSlow(sql: string, seconds: number, error: Error | null): void {
    const outcome = error ? `failed with ${errorCode(error)}` : 'succeeded';
    this.log.warn(
      `Slow ${describe(sql)}: ${outcome} after ${(seconds * 1000).toFixed(0)} ms (SLOW_QUERY_MS=${this.config.slowQueryMs})`,
    );
  }

  /** Rolls back; reports whether the connection is fit to go back to the pool. */
  private async rollback(connection: mysql.PoolConnection): Promise<boolean> {
    try {
      await this.run(connection, 'ROLLBACK', [], false);
      return true;
    } catch {
      return false;
    }
  }

  private abortPending(error: Error): void {
    for (const waiter of [...this.pending]) waiter.abort(error);
  }
}

function asOriginalError(error: unknown): Error {
  return asError(error instanceof PhaseError ? error.original : error);
}

function toWriteResult(result: unknown): WriteResult {
  const header = result as { affectedRows?: number; insertId?: number };
  return { affectedRows: header.affectedRows ?? 0, insertId: Number(header.insertId ?? 0) };
}

/** The statement's first words are enough to tell log lines apart; values never appear. */
function describe(sql: string): string {
  const words = sql.replace(/\s+/g, ' ').trim().split(' ').slice(0, 4).join(' ');
  return words === 'transaction' ? 'transaction' : `query "${words}"`;
}
