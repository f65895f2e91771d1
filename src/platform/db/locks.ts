// Named database locks (GET_LOCK) that processes of this service use to stay out of each
// other's way. Held by a connection, so a process that dies releases its locks with it.
import type mysql from 'mysql2/promise';
import { withDeadline } from '../util/async';

/**
 * Bound on RELEASE_LOCK + QUIT: a timed-out query stays current on a mysql2 connection, so both
 * could queue behind it forever (and PromiseConnection.end() never rejects, it resolves with the
 * error); past this the connection is destroyed, which frees its locks too.
 */
const CLOSE_BOUND_MS = 5_000;

/**
 * Releases `lockName` (if given; releasing a lock not held does nothing) and ends the
 * connection, within CLOSE_BOUND_MS, else destroys it. Never throws.
 */
export async function releaseAndClose(connection: mysql.Connection, lockName?: string): Promise<void> {
  connection.on('error', () => undefined);
  const closing = (async () => {
    if (lockName !== undefined) {
      await connection.query({ sql: 'SELECT RELEASE_LOCK(?)', values: [lockName], timeout: CLOSE_BOUND_MS }).catch(() => undefined);
    }
    await connection.end();
  })();
  await withDeadline(closing, CLOSE_BOUND_MS).catch(() => connection.destroy());
}

/** Held while migrations run: one process migrates, the others wait. */
export function migrationLockName(database: string): string {
  return `resilient_api.migrations.${database}`;
}

/** Held while a restore replaces the tables: every process answers 503 meanwhile (see monitor.ts). */
export function restoreLockName(database: string): string {
  return `resilient_api.restore.${database}`;
}

/** Held by the host running a scheduled backup (src/backup/lease.ts): the others wait, then find it done. */
export function scheduledBackupLockName(database: string): string {
  return `resilient_api.scheduled-backup.${database}`;
}
