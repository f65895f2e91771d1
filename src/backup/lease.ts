// The lease of a scheduled backup across the hosts sharing one database: each host's PM2 launches
// the `backup` app at every scheduled time, and exactly one of them dumps. A named lock (GET_LOCK)
// held by one dedicated connection lets one host at a time decide; the `scheduled_backups` row of
// the slot says what was decided. The lock belongs to the connection, so a host that dies while
// backing up releases it, and the next host to hold it finds the slot not done and takes over.
// A short session wait_timeout and a heartbeat make that true of a host that dies without closing
// its connection too (power loss, a partition): its lock goes within a minute.
import mysql from 'mysql2/promise';
import type { DatabaseConfig } from '../platform/config';
import { describeDbError, errorCode } from '../platform/db/errors';
import { releaseAndClose, scheduledBackupLockName } from '../platform/db/locks';
import type { Logger } from '../platform/logging/logger';
import { messageOf, NamedError } from '../platform/util/errors';

/** How long a scheduled run waits for the migrations that create its table (a first start), and how often it looks. */
const SCHEMA_WAIT_MS = 60_000;
const SCHEMA_POLL_MS = 500;

/** Each GET_LOCK waits at most this long, so a stop request is seen between waits. */
const LOCK_POLL_SECONDS = 2;

/**
 * The lease connection's session wait_timeout (the server default is 8 h): the server closes it,
 * and so frees the lock, this long after a holder stops talking, e.g. a host gone without a FIN.
 */
const LEASE_IDLE_TIMEOUT_SECONDS = 60;

/** A holder's heartbeat (`DO 1`), well within LEASE_IDLE_TIMEOUT_SECONDS. */
const HEARTBEAT_MS = 15_000;

/**
 * Why the lease could not be decided. 'unreachable': the database (out of reach, or failing):
 * a failed run. 'stopped' (SIGINT/SIGTERM) and 'waited-too-long' (another host held the lock past
 * the bound): this host did not take the slot, the host holding it decides it.
 */
export type LeaseErrorKind = 'unreachable' | 'stopped' | 'waited-too-long';

/** The slot's row as the table keeps it (who took it, since when, how it ended). */
export interface SlotRow {
  readonly hostId: string;
  readonly outcome: 'running' | 'done' | 'failed';
  readonly startedAt: string;
}

export class LeaseError extends NamedError {
  constructor(
    readonly kind: LeaseErrorKind,
    message: string,
    options: { readonly cause?: unknown; readonly slotRow?: SlotRow } = {},
  ) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined);
    this.slotRow = options.slotRow;
  }

  /** The slot's row when the waiter gave up (the host holding it), if there was one. */
  readonly slotRow: SlotRow | undefined;
}

export interface LeaseOptions {
  readonly db: DatabaseConfig;
  readonly hostId: string;
  /** The scheduled time this run is the tick of. */
  readonly slot: Date;
  /** Bound on the wait while another host holds the lock (its dump is bounded by as much). */
  readonly maxWaitMs: number;
  /** Aborted by SIGINT/SIGTERM: stop waiting. */
  readonly signal: AbortSignal;
  readonly log: Logger;
}

export type LeaseDecision =
  | { readonly taken: false; readonly byHost: string }
  | { readonly taken: true; readonly lease: SlotLease };

/** The slot as the table keeps it: DATETIME(3) in UTC. */
function slotValue(slot: Date): string {
  return slot.toISOString().slice(0, 23).replace('T', ' ');
}

/**
 * This host holds the lock and is recorded as the slot's taker until finish() and release().
 * A heartbeat keeps the connection from the short idle timeout while the dump runs; the
 * connection lost meanwhile (killed, dropped by a proxy, a heartbeat unanswered) means the lock
 * is gone and another host may take the slot over: a WARN says so, and the dump goes on.
 */
export class SlotLease {
  private released = false;
  /** Why the connection, and the lock with it, was lost; undefined while held. */
  private lostBecause: string | undefined;
  private heartbeatInFlight = false;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly connection: mysql.Connection,
    private readonly options: LeaseOptions,
  ) {
    connection.on('error', (error: unknown) => this.lost(messageOf(error)));
    connection.on('end', () => this.lost('the server closed the connection'));
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private beat(): void {
    if (this.heartbeatInFlight || this.lostBecause !== undefined) return;
    this.heartbeatInFlight = true;
    this.connection
      .query({ sql: 'DO 1', timeout: this.options.db.queryTimeoutMs })
      .catch((error: unknown) => {
        this.lost(`heartbeat failed: ${messageOf(error)}`);
        // Unanswered, the connection is of no further use (a timed-out query stays current on it).
        this.connection.destroy();
      })
      .finally(() => {
        this.heartbeatInFlight = false;
      });
  }

  private lost(why: string): void {
    if (this.released || this.lostBecause !== undefined) return;
    this.lostBecause = why;
    clearInterval(this.heartbeat);
    this.options.log.warn(
      `Scheduled backup of ${this.options.slot.toISOString()}: lease lost (${why}); ` +
        'another host may take the slot over and back it up too',
    );
  }

  /**
   * Records the outcome of this host's run of the slot (on a new connection once the lease's is
   * lost); warns when the row no longer names this host (another took the slot over). Throws if
   * the database cannot be told.
   */
  async finish(outcome: { ok: true; file: string } | { ok: false }): Promise<void> {
    const lost = this.lostBecause !== undefined;
    const connection = lost ? await connect(this.options) : this.connection;
    try {
      const [result] = await connection.query<mysql.ResultSetHeader>({
        sql:
          'UPDATE scheduled_backups SET outcome = ?, ended_at = UTC_TIMESTAMP(3), file = ? ' +
          'WHERE slot = ? AND host_id = ?',
        values: [outcome.ok ? 'done' : 'failed', outcome.ok ? outcome.file : null, slotValue(this.options.slot), this.options.hostId],
        timeout: this.options.db.queryTimeoutMs,
      });
      if (result.affectedRows !== 1) {
        this.options.log.warn(
          `Scheduled backup of ${this.options.slot.toISOString()}: its row no longer names this host (${this.options.hostId}), ` +
            'another host took the slot over; this run\'s outcome is not recorded there',
        );
      }
    } finally {
      if (lost) await releaseAndClose(connection);
    }
  }

  /** Releases the lock and closes the connection; never throws (closing releases the lock anyway). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    if (this.lostBecause !== undefined) {
      this.connection.destroy();
      return;
    }
    await closeHolding(this.connection, this.options);
  }
}

/** Opens a connection to the database (throws what mysql2 throws). */
async function connect(options: LeaseOptions): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: options.db.host,
    port: options.db.port,
    user: options.db.user,
    password: options.db.password,
    database: options.db.database,
    connectTimeout: options.db.connectTimeoutMs,
    enableKeepAlive: true,
  });
}

/** Releases the lease's lock and closes its connection; never throws (closing frees the lock anyway). */
function closeHolding(connection: mysql.Connection, options: LeaseOptions): Promise<void> {
  return releaseAndClose(connection, scheduledBackupLockName(options.db.database));
}

async function readSlot(connection: mysql.Connection, options: LeaseOptions): Promise<SlotRow | undefined> {
  const [rows] = await connection.query<mysql.RowDataPacket[]>({
    sql:
      "SELECT host_id, outcome, DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ') AS started_at " +
      'FROM scheduled_backups WHERE slot = ?',
    values: [slotValue(options.slot)],
    timeout: options.db.queryTimeoutMs,
  });
  const row = rows[0];
  if (!row) return undefined;
  return { hostId: String(row['host_id']), outcome: row['outcome'] as SlotRow['outcome'], startedAt: String(row['started_at']) };
}

/** The slot's row for a waiter: none while the table does not exist yet (the holder waits for the migrations). */
async function readSlotWhileWaiting(connection: mysql.Connection, options: LeaseOptions): Promise<SlotRow | undefined> {
  try {
    return await readSlot(connection, options);
  } catch (error) {
    if (errorCode(error) === 'ER_NO_SUCH_TABLE') return undefined;
    throw error;
  }
}

/** Who took the slot when, as a key: a change means another host took it over. */
const takerOf = (row: SlotRow | undefined): string => (row ? `${row.hostId} ${row.startedAt}` : '');

const describeRow = (row: SlotRow): string => `host ${row.hostId}, ${row.outcome} since ${row.startedAt}`;

/**
 * Waits for the lock, bounded by maxWaitMs and the stop signal; throws LeaseError when it gives
 * up ('stopped', 'waited-too-long', with the slot's row). The bound runs from this waiter's start,
 * and again from each take-over seen meanwhile: the host that took over has a dump of its own to
 * make (A fails late, B takes over: C waits for B).
 */
async function acquire(connection: mysql.Connection, options: LeaseOptions, slotIso: string): Promise<void> {
  const lockName = scheduledBackupLockName(options.db.database);
  const boundSeconds = Math.round(options.maxWaitMs / 1000);
  let deadline = Date.now() + options.maxWaitMs;
  let seen: { readonly row: SlotRow | undefined } | undefined;
  const giveUp = async (kind: LeaseErrorKind, message: string): Promise<never> => {
    const slotRow = await readSlotWhileWaiting(connection, options).catch(() => seen?.row);
    throw new LeaseError(kind, message, { slotRow });
  };
  for (;;) {
    if (options.signal.aborted) {
      return giveUp('stopped', `stopped (${String(options.signal.reason)}) while waiting for another host's lock`);
    }
    const left = deadline - Date.now();
    if (left <= 0) return giveUp('waited-too-long', `another host held the lock for over ${boundSeconds} s`);
    const waitSeconds = Math.max(0, Math.min(LOCK_POLL_SECONDS, Math.ceil(left / 1000)));
    const [rows] = await connection.query<mysql.RowDataPacket[]>({
      sql: 'SELECT GET_LOCK(?, ?) AS acquired',
      values: [lockName, waitSeconds],
      timeout: waitSeconds * 1000 + options.db.queryTimeoutMs,
    });
    if (rows[0]?.['acquired'] === 1) return;
    const row = await readSlotWhileWaiting(connection, options);
    if (!seen) {
      options.log.info(
        `Scheduled backup of ${slotIso}: another host holds the lease` + (row ? ` (${describeRow(row)})` : '') + `; waiting up to ${boundSeconds} s for it`,
      );
    } else if (row && takerOf(row) !== takerOf(seen.row)) {
      deadline = Date.now() + options.maxWaitMs;
      options.log.info(`Scheduled backup of ${slotIso}: taken over by another host (${describeRow(row)}); waiting up to ${boundSeconds} s more`);
    }
    seen = { row };
  }
}

/**
 * The slot's row, once the table exists. At a first `pm2 start` the backup app may be launched
 * within a scheduled time's window while the api is still applying the migrations that create
 * the table: wait for them (the lock held, so other hosts wait too), bounded and stoppable.
 */
async function readSlotOnceMigrated(connection: mysql.Connection, options: LeaseOptions, slotIso: string): Promise<SlotRow | undefined> {
  const deadline = Date.now() + SCHEMA_WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      return await readSlot(connection, options);
    } catch (error) {
      if (errorCode(error) !== 'ER_NO_SUCH_TABLE' || Date.now() >= deadline) throw error;
    }
    if (options.signal.aborted) {
      throw new LeaseError('stopped', `stopped (${String(options.signal.reason)}) while waiting for the migrations`);
    }
    if (!announced) {
      announced = true;
      options.log.info(`Scheduled backup of ${slotIso}: the scheduled_backups table does not exist yet; waiting for the migrations`);
    }
    await new Promise((resolve) => setTimeout(resolve, SCHEMA_POLL_MS));
  }
}

/**
 * Holds the lock, then decides: the slot done by a host (this one included, after a restart) →
 * not taken; absent, failed or left running by a host that died → this host records itself as
 * the taker and keeps the lock until release(). Throws LeaseError, with its kind and cause, when
 * the database is out of reach, the wait is too long or a stop comes first.
 */
export async function takeScheduledSlot(options: LeaseOptions): Promise<LeaseDecision> {
  const slotIso = options.slot.toISOString();
  let connection: mysql.Connection;
  try {
    connection = await connect(options);
  } catch (error) {
    throw new LeaseError('unreachable', `cannot reach the database to take the scheduled backup lease: ${describeDbError(error)}`, {
      cause: error,
    });
  }
  // Before the lease is held a lost connection shows as a failed query; SlotLease watches it after.
  connection.on('error', () => undefined);
  try {
    await connection.query({ sql: 'SET SESSION wait_timeout = ?', values: [LEASE_IDLE_TIMEOUT_SECONDS], timeout: options.db.queryTimeoutMs });
    await acquire(connection, options, slotIso);
    // A stop that came during the last GET_LOCK: do not start a run that would be stopped at once.
    if (options.signal.aborted) throw new LeaseError('stopped', `stopped (${String(options.signal.reason)}) before taking the slot`);
    const row = await readSlotOnceMigrated(connection, options, slotIso);
    if (row?.outcome === 'done') {
      await closeHolding(connection, options);
      return { taken: false, byHost: row.hostId };
    }
    if (row?.outcome === 'running') {
      options.log.warn(
        `Scheduled backup of ${slotIso}: host ${row.hostId} took it at ${row.startedAt} and stopped without finishing (its lock is gone); taking over`,
      );
    } else if (row?.outcome === 'failed') {
      options.log.info(`Scheduled backup of ${slotIso}: host ${row.hostId} failed it; trying again here`);
    }
    await connection.query({
      sql:
        "INSERT INTO scheduled_backups (slot, host_id, started_at, outcome) VALUES (?, ?, UTC_TIMESTAMP(3), 'running') " +
        "ON DUPLICATE KEY UPDATE host_id = VALUES(host_id), started_at = VALUES(started_at), ended_at = NULL, outcome = 'running', file = NULL",
      values: [slotValue(options.slot), options.hostId],
      timeout: options.db.queryTimeoutMs,
    });
    return { taken: true, lease: new SlotLease(connection, options) };
  } catch (error) {
    await closeHolding(connection, options);
    if (error instanceof LeaseError) throw error;
    const hint = errorCode(error) === 'ER_NO_SUCH_TABLE' ? ' (run `npm run migrate`: the scheduled_backups table is missing)' : '';
    throw new LeaseError('unreachable', `cannot take the scheduled backup lease: ${describeDbError(error)}${hint}`, { cause: error });
  }
}
