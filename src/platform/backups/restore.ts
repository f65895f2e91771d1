// Loads a backup into the configured database. The file is read whole first and refused unless
// it is a complete dump of this service holding only what a dump holds (a truncated, foreign or
// tampered file changes nothing: no client command runs, no other database is touched). The load
// runs under the migration lock, so no worker migrates into a half-loaded schema; then pending
// migrations bring the restored schema up to this code's.
//
// The service may keep running meanwhile. The restore holds the restore lock, which every
// process's database monitor sees at its next ping: from then on they answer 503 at once (and
// never, say, 401 for a user whose rows are not loaded yet), and serve again once it is released.
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { setTimeout } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import { type DatabaseConfig, databaseTarget } from '../config';
import type { Migration } from '../db/migrations';
import { restoreLockName } from '../db/locks';
import { withMigrationLock } from '../db/migrate';
import type { Logger } from '../logging/logger';
import { type DumpFacts, inspectDumpFile } from './dumpFile';
import { findTool, safeClientOptions } from './clientTools';
import { runClientTool } from './toolProcess';
import { NamedError } from '../util/errors';

/** Beyond two monitor intervals: a ping already under way when the lock was taken. */
const SETTLE_MARGIN_MS = 500;

/** How long a restore waits, lock held, for every process's monitor to see it: two pings. */
export function restoreHoldOffMs(db: DatabaseConfig): number {
  return 2 * db.healthIntervalMs + SETTLE_MARGIN_MS;
}

export class RestoreError extends NamedError {}

export interface RestoreOptions {
  readonly db: DatabaseConfig;
  readonly file: string;
  readonly log: Logger;
  readonly timeoutMs: number;
  /** Asked once the file is known to be good; false cancels with nothing changed. */
  readonly confirm: (facts: DumpFacts) => Promise<boolean>;
  readonly migrations?: readonly Migration[];
}

export interface RestoreResult {
  readonly facts: DumpFacts;
  /** Migrations applied after the load (the dump was older than this code). */
  readonly migrated: readonly string[];
  readonly totalUsers: number;
  readonly durationMs: number;
}

/** Resolves undefined when the confirmation said no. Throws DumpRejectedError for a bad file. */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult | undefined> {
  const { db, file, log } = options;
  const facts = await inspectDumpFile(file);
  if (!(await options.confirm(facts))) return undefined;

  const started = Date.now();
  const target = databaseTarget(db);
  log.info(`Restore of ${file} into ${target} started (${facts.footer})`);
  return withMigrationLock(db, log, async (session) => {
    const [held] = await session.connection.query<import('mysql2').RowDataPacket[]>(
      'SELECT GET_LOCK(?, 0) AS acquired',
      [restoreLockName(db.database)],
    );
    if (held[0]?.['acquired'] !== 1) throw new RestoreError(`another restore of ${target} is under way`);
    // Every process's monitor sees the lock before any table goes away.
    await setTimeout(restoreHoldOffMs(db));
    await load(file, options);
    const migrated = await session.applyPending({ migrations: options.migrations });
    // The dump's own count: taken in the same snapshot as the rows, and loaded before the triggers.
    const [rows] = await session.connection.query<import('mysql2').RowDataPacket[]>(
      'SELECT total_users FROM user_stats WHERE id = 1',
    );
    const totalUsers = Number(rows[0]?.['total_users'] ?? 0);
    const durationMs = Date.now() - started;
    log.info(
      `Restore of ${file} into ${target} finished in ${durationMs} ms: ${totalUsers} users` +
        (migrated.length > 0 ? `, then applied ${migrated.join(', ')}` : ''),
    );
    return { facts, migrated, totalUsers, durationMs };
  });
}

/**
 * Streams the decompressed dump into the command-line client, in its safest mode: the file was
 * checked to hold only SQL (dumpScanner.ts), and the client is told to refuse client commands
 * anyway; the character set is the one the dump was written in, so the client splits statements
 * where the check did.
 */
async function load(file: string, options: RestoreOptions): Promise<void> {
  const client = findTool('client');
  const safety = safeClientOptions(client);
  options.log.info(`Loading with ${client} ${safety.join(' ') || '(this client knows no safe mode)'}`);
  const run = await runClientTool(
    'client',
    options.db,
    [...safety, '--default-character-set=utf8mb4', '--batch', options.db.database],
    { input: (stdin) => pipeline(createReadStream(file), createGunzip(), stdin) },
    { timeoutMs: options.timeoutMs },
  );
  // The client stops reading at the first failed statement, which breaks the pipe: its own
  // message says why, so it comes first.
  if (run.exitCode !== 0) {
    throw new RestoreError(`${run.tool} exited with code ${run.exitCode} while loading: ${run.stderr || 'no message'}`);
  }
  if (run.streamError) {
    throw new RestoreError(`reading ${file} failed: ${run.streamError.message}`, { cause: run.streamError });
  }
}
