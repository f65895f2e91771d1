// What the api's /metrics says about backups, whichever process took them: the backup app is a
// one-shot job that exits, so nothing of it is left to scrape. The folder itself is the record
// of success (the newest published backup of each kind: its name carries the time its snapshot
// was taken, the file its size); a small status file beside the backups adds what a file cannot
// say: how long the run took, and the failed runs. A backup that never runs (the app removed
// from PM2, a schedule that never fires) leaves the newest backup growing old, so the age alert
// fires without anything having to report it.
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logging/logger';
import { messageOf } from '../util/errors';
import { type BackupKind, type BackupName, compareBackupNames, parseBackupName } from './dumpFile';

export const BACKUP_KINDS: readonly BackupKind[] = ['scheduled', 'predeploy'];

/** What the backup runs write down: failures and the last success's duration, by kind. */
export interface BackupStatusFile {
  /** Failed runs since the file was made (never reset by a success: a counter). */
  readonly failures: number;
  /** When the last run failed (ms since the epoch). */
  readonly lastFailureAt?: number;
  /** The last successful run of each kind: its file name and how long it took. */
  readonly lastSuccess?: Partial<Record<BackupKind, { readonly file: string; readonly durationMs: number }>>;
}

/** The newest backup of one kind as the metrics show it. */
export interface NewestBackup {
  /** When its snapshot was taken (the UTC stamp of its name), in seconds since the epoch. */
  readonly takenAtSeconds: number;
  readonly bytes: number;
  /** Known when the status file records the run that wrote this very file. */
  readonly durationSeconds?: number;
}

export interface BackupView {
  readonly newest: Partial<Record<BackupKind, NewestBackup>>;
  readonly failures: number;
  readonly lastFailureAtSeconds?: number;
}

/** `.resilient_api-backup-status.json`: hidden, and never a backup's name, so retention and restores ignore it. */
export function statusFileName(database: string): string {
  return `.${database}-backup-status.json`;
}

/** The status file's content, or an empty one when it is missing or unreadable. */
export async function readStatusFile(dir: string, database: string): Promise<BackupStatusFile> {
  try {
    const parsed = JSON.parse(await readFile(path.join(dir, statusFileName(database)), 'utf8')) as Partial<BackupStatusFile>;
    return {
      failures: Number.isFinite(parsed.failures) ? Number(parsed.failures) : 0,
      ...(Number.isFinite(parsed.lastFailureAt) ? { lastFailureAt: Number(parsed.lastFailureAt) } : {}),
      ...(parsed.lastSuccess && typeof parsed.lastSuccess === 'object' ? { lastSuccess: parsed.lastSuccess } : {}),
    };
  } catch {
    return { failures: 0 };
  }
}

/**
 * Records one run's outcome: read, change, write to a temporary name and rename, so a reader
 * never sees half a file. Two writers at the same moment (the scheduled job and a deploy's
 * backup) could lose one failure count; a lock would cost more than that rare miscount, since a
 * failed scheduled run is also counted by the supervisor (resilient_api_exits_total) and every
 * failure is logged. Throws when the folder cannot be written (the caller logs it: the
 * run's own outcome is already logged and alerted).
 */
export async function recordBackupOutcome(
  dir: string,
  database: string,
  outcome: { readonly ok: true; readonly kind: BackupKind; readonly file: string; readonly durationMs: number } | { readonly ok: false },
  now = Date.now(),
): Promise<void> {
  const current = await readStatusFile(dir, database);
  const next: BackupStatusFile = outcome.ok
    ? { ...current, lastSuccess: { ...current.lastSuccess, [outcome.kind]: { file: path.basename(outcome.file), durationMs: outcome.durationMs } } }
    : { ...current, failures: current.failures + 1, lastFailureAt: now };
  const file = path.join(dir, statusFileName(database));
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(next)}\n`, { mode: 0o600 });
  await rename(temporary, file);
}

export type BackupOutcome = Parameters<typeof recordBackupOutcome>[2];

/**
 * recordBackupOutcome for a backup run: a folder that cannot take the note (full, read-only)
 * loses only the note, with a WARN line, since the run's own outcome is already logged and
 * alerted, and the age alert follows.
 */
export async function recordBackupOutcomeOrWarn(
  dir: string,
  database: string,
  outcome: BackupOutcome,
  log: Pick<Logger, 'warn'>,
): Promise<void> {
  await recordBackupOutcome(dir, database, outcome).catch((error: unknown) =>
    log.warn(`Could not record the backup's outcome in ${statusFileName(database)}: ${messageOf(error)}`),
  );
}

/**
 * The backups of `database` in `dir` as the metrics show them. A folder that does not exist
 * (no backup yet) or cannot be read shows no backup: the age alert then fires, as it should.
 */
export async function readBackupView(dir: string, database: string): Promise<BackupView> {
  const [names, status] = await Promise.all([readdir(dir).catch(() => [] as string[]), readStatusFile(dir, database)]);
  const newestNames: Partial<Record<BackupKind, BackupName & { readonly file: string }>> = {};
  for (const file of names) {
    const name = parseBackupName(database, file);
    if (!name) continue;
    const best = newestNames[name.kind];
    if (!best || compareBackupNames(best, name) < 0) newestNames[name.kind] = { ...name, file };
  }
  const newest: Partial<Record<BackupKind, NewestBackup>> = {};
  for (const kind of BACKUP_KINDS) {
    const found = newestNames[kind];
    if (!found) continue;
    // Removed by retention between readdir and stat: the next scrape sees the new newest.
    const info = await stat(path.join(dir, found.file)).catch(() => undefined);
    if (!info) continue;
    const recorded = status.lastSuccess?.[kind];
    newest[kind] = {
      takenAtSeconds: stampSeconds(found.stamp),
      bytes: info.size,
      ...(recorded?.file === found.file && Number.isFinite(recorded.durationMs) ? { durationSeconds: recorded.durationMs / 1000 } : {}),
    };
  }
  return {
    newest,
    failures: status.failures,
    ...(status.lastFailureAt === undefined ? {} : { lastFailureAtSeconds: status.lastFailureAt / 1000 }),
  };
}

/** `20261128T013000Z` → seconds since the epoch. */
function stampSeconds(stamp: string): number {
  const iso = stamp.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
  return Date.parse(iso) / 1000;
}
