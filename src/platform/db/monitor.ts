// Watches the database on a connection of its own, whether or not requests come, and acts as
// the circuit breaker: while the database is known to be down, callers fail at once instead of
// waiting out their timeouts. A dead server is seen at the next ping (interval), a frozen one
// when a ping outlives its timeout; both well inside 2 s with the defaults. A restore under way
// (it holds the restore lock) counts as down too: the tables are being replaced.
import { EventEmitter } from 'node:events';
import mysql from 'mysql2';
import type { DatabaseConfig } from '../config';
import { describeDbError, errorCode } from './errors';
import { restoreLockName } from './locks';

export type DatabaseState = 'unknown' | 'up' | 'down';

export interface HealthSnapshot {
  readonly state: DatabaseState;
  /** When the state last changed (ms since epoch). */
  readonly since: number;
  /** When the last check finished (ms since epoch). */
  readonly checkedAt: number;
  readonly error?: string;
}

/** A health answer is due within 1 s: a ping that takes longer counts as a failure. */
const PING_TIMEOUT_MS = 800;
/** A result older than this is refreshed before it is reported. */
const MAX_RESULT_AGE_MS = 1000;
/** A timer that fires this late was held up by our own event loop, not by the database. */
const LATE_TIMER_MS = 200;

export interface MonitorEvents {
  up: [];
  down: [error: string];
}

export class DatabaseMonitor extends EventEmitter<MonitorEvents> {
  private snapshot: HealthSnapshot = { state: 'unknown', since: Date.now(), checkedAt: 0 };
  private connection: mysql.Connection | undefined;
  private inFlight: Promise<HealthSnapshot> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly config: DatabaseConfig) {
    super();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.config.healthIntervalMs);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.connection?.destroy();
    this.connection = undefined;
  }

  get state(): DatabaseState {
    return this.snapshot.state;
  }

  /** The last result if it is no older than MAX_RESULT_AGE_MS (the usual case: pings come twice a second). */
  freshSnapshot(): HealthSnapshot | undefined {
    return Date.now() - this.snapshot.checkedAt < MAX_RESULT_AGE_MS ? this.snapshot : undefined;
  }

  /**
   * A result no older than MAX_RESULT_AGE_MS. Concurrent callers share the check in flight,
   * so a storm of probes costs the database one ping.
   */
  fresh(): Promise<HealthSnapshot> {
    const snapshot = this.freshSnapshot();
    return snapshot ? Promise.resolve(snapshot) : this.check();
  }

  /** Runs a check now unless one is already under way (a failed query calls this). */
  check(): Promise<HealthSnapshot> {
    this.inFlight ??= this.ping()
      .then(
        () => this.record('up'),
        (error: unknown) => this.record('down', describeDbError(error)),
      )
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private record(state: 'up' | 'down', error?: string): HealthSnapshot {
    const previous = this.snapshot.state;
    const now = Date.now();
    this.snapshot = {
      state,
      since: previous === state ? this.snapshot.since : now,
      checkedAt: now,
      ...(error === undefined ? {} : { error }),
    };
    if (previous !== state) {
      if (state === 'up') this.emit('up');
      else this.emit('down', error ?? 'unknown error');
    }
    return this.snapshot;
  }

  private async ping(): Promise<void> {
    let restoring: boolean;
    try {
      restoring = await this.pingOnce(this.connectionForPing());
    } catch (error) {
      this.dropConnection();
      // A connection the server closed while idle says nothing about the server:
      // try once more on a fresh one before declaring it down. A timeout already cost its time.
      if (errorCode(error) === 'PING_TIMEOUT') throw error;
      restoring = await this.pingOnce(this.connectionForPing()).catch((retryError: unknown) => {
        this.dropConnection();
        throw retryError;
      });
    }
    if (restoring) {
      throw Object.assign(new Error(`a restore of ${this.config.database} is under way`), { code: 'DB_RESTORING' });
    }
  }

  private connectionForPing(): mysql.Connection {
    if (this.connection) return this.connection;
    const connection = mysql.createConnection({
      host: this.config.host,
      port: this.config.port,
      user: this.config.user,
      password: this.config.password,
      connectTimeout: Math.min(this.config.connectTimeoutMs, PING_TIMEOUT_MS),
    });
    // Errors also arrive through the pending query; this keeps a late one from being unhandled.
    connection.on('error', () => this.dropConnection(connection));
    this.connection = connection;
    return connection;
  }

  private dropConnection(which: mysql.Connection | undefined = this.connection): void {
    if (!which) return;
    which.destroy();
    if (this.connection === which) this.connection = undefined;
  }

  /** Resolves whether a restore holds the restore lock; the same one round trip as SELECT 1. */
  private pingOnce(connection: mysql.Connection): Promise<boolean> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const armedAt = Date.now();
      const onTimeout = (): void => {
        if (settled) return;
        // If our event loop was blocked, the reply may be waiting unread: give it a moment.
        if (Date.now() - armedAt > PING_TIMEOUT_MS + LATE_TIMER_MS && !graced) {
          graced = true;
          timer = setTimeout(onTimeout, LATE_TIMER_MS);
          return;
        }
        settled = true;
        reject(Object.assign(new Error(`no answer within ${PING_TIMEOUT_MS} ms`), { code: 'PING_TIMEOUT' }));
      };
      let graced = false;
      let timer = setTimeout(onTimeout, PING_TIMEOUT_MS);
      const sql = 'SELECT IS_USED_LOCK(?) AS holder';
      connection.query<mysql.RowDataPacket[]>(sql, [restoreLockName(this.config.database)], (error, rows) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(rows[0]?.['holder'] !== null && rows[0]?.['holder'] !== undefined);
      });
    });
  }
}
