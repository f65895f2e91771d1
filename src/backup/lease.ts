// The lease of a scheduled backup across the hosts sharing one database: each host's PM2 launches
// the `backup` app at every scheduled time, and exactly one of them dumps. A named lock (GET_LOCK)
// held by one dedicated connection lets one host at a time decide; the `scheduled_backups` row of
// the slot says what was decided. The lock belongs to the connection, so a host that dies while
// backing up releases it, and the next host to hold it finds the slot not done and takes over.
import mysql from 'mysql2/promise';
import type { DatabaseConfig } from '../platform/config';
import { describeDbError, errorCode } from '../platform/db/errors';
import { scheduledBackupLockName } from '../platform/db/locks';
import type { Logger } from '../platform/logging/logger';
import { NamedError } from '../platform/util/errors';

/** How long a scheduled run waits for the migrations that create its table (a first start), and how often it looks. */
const SCHEMA_WAIT_MS = 60_000;
const SCHEMA_POLL_MS = 500;

/** Each GET_LOCK waits at most this long, so a stop request is seen between waits. */
const LOCK_POLL_SECONDS = 2;

/** The lease could not be decided (database out of reach, the lock held too long, a stop). */
export class LeaseError extends NamedError {}

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

interface SlotRow {
  readonly hostId: string;
  readonly outcome: 'running' | 'done' | 'failed';
  readonly startedAt: string;
}

/** This host holds the lock and is recorded as the slot's taker until finish() and release(). */
export class SlotLease {
  private released = false;

  constructor(
    private readonly connection: mysql.Connection,
    private readonly options: LeaseOptions,
  ) {}

  /** Records the outcome of this host's run of the slot; throws if the database cannot be told. */
  async finish(outcome: { ok: true; file: string } | { ok: false }): Promise<void> {
    await this.connection.query({
      sql:
        'UPDATE scheduled_backups SET outcome = ?, ended_at = UTC_TIMESTAMP(3), file = ? ' +
        'WHERE slot = ? AND host_id = ?',
      values: [outcome.ok ? 'done' : 'failed', outcome.ok ? outcome.file : null, slotValue(this.options.slot), this.options.hostId],
      timeout: this.options.db.queryTimeoutMs,
    });
  }

  /** Releases the lock and closes the connection; never throws (closing releases the lock anyway). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await closeHolding(this.connection, this.options);
  }
}

async function closeHolding(connection: mysql.Connection, options: LeaseOptions): Promise<void> {
  await connection
    .query({ sql: 'SELECT RELEASE_LOCK(?)', values: [scheduledBackupLockName(options.db.database)], timeout: options.db.queryTimeoutMs })
    .catch(() => undefined);
  await connection.end().catch(() => connection.destroy());
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

/** Waits for the lock, bounded by maxWaitMs and the stop signal; throws LeaseError when it gives up. */
async function acquire(connection: mysql.Connection, options: LeaseOptions, slotIso: string): Promise<void> {
  const lockName = scheduledBackupLockName(options.db.database);
  const deadline = Date.now() + options.maxWaitMs;
  let announced = false;
  for (;;) {
    if (options.signal.aborted) {
      throw new LeaseError(`stopped (${String(options.signal.reason)}) while waiting for another host's backup of ${slotIso}`);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new LeaseError(
        `another host held the scheduled backup lock for over ${Math.round(options.maxWaitMs / 1000)} s (slot ${slotIso})`,
      );
    }
    const waitSeconds = Math.max(0, Math.min(LOCK_POLL_SECONDS, Math.ceil(left / 1000)));
    const [rows] = await connection.query<mysql.RowDataPacket[]>({
      sql: 'SELECT GET_LOCK(?, ?) AS acquired',
      values: [lockName, waitSeconds],
      timeout: waitSeconds * 1000 + options.db.queryTimeoutMs,
    });
    if (rows[0]?.['acquired'] === 1) return;
    if (!announced) {
      announced = true;
      const row = await readSlot(connection, options);
      options.log.info(
        `Scheduled backup of ${slotIso}: another host holds the lease` +
          (row ? ` (host ${row.hostId}, ${row.outcome} since ${row.startedAt})` : '') +
          `; waiting up to ${Math.round(options.maxWaitMs / 1000)} s for it`,
      );
    }
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
      if (errorCode(error) !== 'ER_NO_SUCH_TABLE' || Date.now() >= deadline || options.signal.aborted) throw error;
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
 * the taker and keeps the lock until release(). Throws LeaseError, with the cause, when the
 * database is out of reach, the wait is too long or a stop comes first.
 */
export async function takeScheduledSlot(options: LeaseOptions): Promise<LeaseDecision> {
  const slotIso = options.slot.toISOString();
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection({
      host: options.db.host,
      port: options.db.port,
      user: options.db.user,
      password: options.db.password,
      database: options.db.database,
      connectTimeout: options.db.connectTimeoutMs,
      enableKeepAlive: true,
    });
  } catch (error) {
    throw new LeaseError(`cannot reach the database to take the scheduled backup lease: ${describeDbError(error)}`, { cause: error });
  }
  connection.on('error', () => undefined);
  try {
    await acquire(connection, options, slotIso);
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
    throw new LeaseError(`cannot take the scheduled backup lease: ${describeDbError(error)}${hint}`, { cause: error });
  }
}
