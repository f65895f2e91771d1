// One backup: a consistent dump of the service's database, gzip-compressed as it streams (the
// dump is never held in memory), written under a hidden partial name, and published under its
// final name only once the tool exited 0 and the file reads back as a complete dump of this
// service. Then the oldest backups beyond BACKUP_KEEP go. A failed run leaves no file behind.
import { createWriteStream } from 'node:fs';
import { link, mkdir, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { DatabaseConfig } from '../config';
import { type BackupKind, backupFileName, DumpRejectedError, inspectDumpFile, partialName } from './dumpFile';
import { pruneBackups } from './retention';
import { runClientTool } from './toolProcess';
import { findTool } from './clientTools';
import { NamedError } from '../util/errors';

/**
 * --single-transaction: one consistent InnoDB snapshot without locking the tables, so the service
 * keeps writing meanwhile. --routines and --triggers (the users triggers keep user_stats exact;
 * they are written after each table's rows, so loading the rows does not count them twice).
 * --hex-blob: binary values survive any character set. --no-tablespaces: no PROCESS privilege
 * needed. No --databases: the dump carries no database name, so it loads into whichever database
 * the restore is configured for.
 */
const DUMP_OPTIONS = [
  '--single-transaction',
  '--quick',
  '--routines',
  '--triggers',
  '--hex-blob',
  '--no-tablespaces',
  '--default-character-set=utf8mb4',
] as const;

export class BackupError extends NamedError {}

export interface BackupOptions {
  readonly db: DatabaseConfig;
  readonly dir: string;
  /** Scheduled backups kept (BACKUP_KEEP). */
  readonly keep: number;
  /** Deploy backups kept, apart from the scheduled ones (BACKUP_KEEP_PREDEPLOY). */
  readonly keepPredeploy: number;
  /** A deploy backup (before migrating) is named and kept apart; default: scheduled. */
  readonly kind?: BackupKind;
  readonly timeoutMs: number;
  /** Aborting kills the dump and removes the partial file (SIGINT/SIGTERM of the job). */
  readonly signal?: AbortSignal;
}

export interface BackupResult {
  readonly file: string;
  readonly bytes: number;
  readonly uncompressedBytes: number;
  readonly durationMs: number;
  /** Older backups removed by retention. */
  readonly removed: readonly string[];
}

export async function createBackup(options: BackupOptions): Promise<BackupResult> {
  const { db, dir } = options;
  const started = new Date();
  // The dumps hold password hashes: readable by the service's user only.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const partial = path.join(dir, partialName(db.database, started, process.pid));
  let file: string;
  let uncompressedBytes: number;
  try {
    await dumpInto(partial, options);
    // Read back what reached the disk (a tool that exits 0 may still have written a cut-short
    // dump): the check a restore makes, so what we publish restores.
    uncompressedBytes = (await inspectDumpFile(partial).catch(notUsable)).uncompressedBytes;
    await syncFile(partial);
    file = await publish(partial, dir, db.database, started, options.kind ?? 'scheduled');
    await syncFile(dir);
  } finally {
    await rm(partial, { force: true });
  }
  const { size } = await stat(file);
  const removed = await pruneBackups(dir, db.database, { scheduled: options.keep, predeploy: options.keepPredeploy });
  return { file, bytes: size, uncompressedBytes, durationMs: Date.now() - started.getTime(), removed };
}

/** Runs the dump tool into `partial`, compressed, checking its exit code and the write. */
async function dumpInto(partial: string, options: BackupOptions): Promise<void> {
  const run = await runClientTool(
    'dump',
    options.db,
    [...DUMP_OPTIONS, options.db.database],
    { output: (stdout) => pipeline(stdout, createGzip(), createWriteStream(partial, { flags: 'wx', mode: 0o600 })) },
    { timeoutMs: options.timeoutMs, signal: options.signal },
  );
  // A failed write (a full disk) makes the tool fail too, with a less useful message: say it first.
  if (run.streamError) {
    throw new BackupError(`writing ${partial} failed: ${run.streamError.message}`, { cause: run.streamError });
  }
  if (run.exitCode !== 0) throw new BackupError(`${run.tool} exited with code ${run.exitCode}: ${run.stderr || 'no message'}`);
}

/** A DumpRejectedError as a BackupError that says the dump is unusable; anything else as it is. */
function notUsable(error: unknown): never {
  if (error instanceof DumpRejectedError) {
    throw new BackupError(`the dump written by ${findTool('dump')} is not usable: ${error.message}`);
  }
  throw error;
}

/**
 * Gives the partial file its final name without ever replacing a backup: link() fails when the
 * name exists (two backups in the same second), and the next sequence number is tried.
 */
async function publish(partial: string, dir: string, database: string, started: Date, kind: BackupKind): Promise<string> {
  for (let sequence = 1; ; sequence++) {
    const file = path.join(dir, backupFileName(database, started, sequence, kind));
    try {
      await link(partial, file);
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}

/** fsync: the data (or, for a folder, the new name) is on disk before we call it a backup. */
async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
