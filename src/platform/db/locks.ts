// Named database locks (GET_LOCK) that processes of this service use to stay out of each
// other's way. Held by a connection, so a process that dies releases its locks with it.

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
