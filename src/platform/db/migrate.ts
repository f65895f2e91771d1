// Versioned migrations with umzug, recorded in `schema_migrations`. Any number of processes may
// run this at once (every worker does at start-up): a named database lock lets one apply the
// pending migrations while the others wait, then find nothing left to do.
import mysql from 'mysql2/promise';
import type { Umzug, UmzugStorage } from 'umzug';
import type { DatabaseConfig } from '../config';
import type { Logger } from '../logging/logger';
import { isTransient } from './errors';
import { migrationLockName, releaseAndClose } from './locks';
import { type Migration, migrations as releasedMigrations } from './migrations';
import { messageOf, NamedError } from '../util/errors';

const LOCK_WAIT_SECONDS = 60;

/** A migration, or the step before migrating, failed; the message says which and what is left. */
export class MigrationError extends NamedError {}

/** The database was out of reach for a migration run (it may come back): the failure behind it, or undefined. */
export function unreachableCause(error: unknown): unknown {
  const cause = error instanceof MigrationError && error.cause !== undefined ? error.cause : error;
  return isTransient(cause) ? cause : undefined;
}

export interface MigrationStatus {
  readonly applied: readonly string[];
  readonly pending: readonly string[];
}

export interface MigrateOptions {
  /** The schema's history; the released one unless a test or a drill says otherwise. */
  readonly migrations?: readonly Migration[];
  /**
   * Runs under the lock, only when something is pending, before the first migration is applied
   * (the backup before migrating). If it throws, nothing is applied.
   */
  readonly beforeApply?: (pending: readonly string[], applied: readonly string[]) => Promise<void>;
}

/** One connection holding the migration lock, and what may be done with it. */
export interface MigrationSession {
  readonly connection: mysql.Connection;
  /** Applies the pending migrations on this connection; the names applied. Throws MigrationError. */
  applyPending(options?: MigrateOptions): Promise<string[]>;
  status(options?: MigrateOptions): Promise<MigrationStatus>;
}

class MysqlStorage implements UmzugStorage<mysql.Connection> {
  constructor(private readonly connection: mysql.Connection) {}

  async ensureTable(): Promise<void> {
    await this.connection.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        name VARCHAR(255) NOT NULL PRIMARY KEY,
        applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
      ) ENGINE=InnoDB`);
  }

  async logMigration({ name }: { name: string }): Promise<void> {
    await this.connection.execute('INSERT INTO schema_migrations (name) VALUES (?)', [name]);
  }

  async unlogMigration({ name }: { name: string }): Promise<void> {
    await this.connection.execute('DELETE FROM schema_migrations WHERE name = ?', [name]);
  }

  async executed(): Promise<string[]> {
    const [rows] = await this.connection.query<mysql.RowDataPacket[]>(
      'SELECT name FROM schema_migrations ORDER BY name',
    );
    return rows.map((row) => String(row['name']));
  }
}

/** Opens a connection to the server, creating the database if it is missing. */
async function connect(config: DatabaseConfig): Promise<mysql.Connection> {
  const connection = await mysql.createConnection({
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    connectTimeout: config.connectTimeoutMs,
    charset: 'utf8mb4_unicode_ci',
  });
  connection.on('error', () => undefined);
  try {
    // An identifier cannot be a placeholder; config.ts allows only [A-Za-z0-9_] in the name.
    await connection.query(
      `CREATE DATABASE IF NOT EXISTS \`${config.database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
    await connection.query(`USE \`${config.database}\``);
    return connection;
  } catch (error) {
    connection.destroy();
    throw error;
  }
}

/**
 * Runs `work` on a connection holding the database's migration lock, so no process migrates
 * meanwhile (a restore loads its dump under it too). The database is created if missing.
 */
export async function withMigrationLock<T>(
  config: DatabaseConfig,
  log: Logger,
  work: (session: MigrationSession) => Promise<T>,
): Promise<T> {
  const connection = await connect(config);
  const lockName = migrationLockName(config.database);
  try {
    const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS acquired', [
      lockName,
      LOCK_WAIT_SECONDS,
    ]);
    if (rows[0]?.['acquired'] !== 1) {
      throw new MigrationError(`another process held the migration lock for over ${LOCK_WAIT_SECONDS} s`);
    }
    const storage = new MysqlStorage(connection);
    await storage.ensureTable();
    return await work({
      connection,
      applyPending: async (options = {}) => {
        // Pending is decided from one read of the table, without loading umzug at all in the
        // usual start-up with nothing to do (it and its dependencies weigh about 16 MB).
        const executed = new Set(await storage.executed());
        const known = (options.migrations ?? releasedMigrations).map((migration) => migration.name);
        const pending = known.filter((name) => !executed.has(name));
        if (pending.length === 0) return [];
        const applied = known.filter((name) => executed.has(name));
        return applyPending(umzugFor(connection, storage, log, options), pending, applied, options);
      },
      status: async (options = {}) => {
        const umzug = umzugFor(connection, storage, log, options);
        const [applied, pending] = await Promise.all([umzug.executed(), umzug.pending()]);
        return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
      },
    });
  } finally {
    // Releasing a lock this connection does not hold (GET_LOCK timed out) does nothing.
    await releaseAndClose(connection, lockName);
  }
}

async function applyPending(
  umzug: Umzug<mysql.Connection>,
  pending: readonly string[],
  applied: readonly string[],
  options: MigrateOptions,
): Promise<string[]> {
  if (options.beforeApply) {
    try {
      await options.beforeApply(pending, applied);
    } catch (error) {
      throw new MigrationError(
        `Not migrating: the step before applying ${pending.join(', ')} failed (${messageOf(error)}); the schema is unchanged`,
        { cause: error },
      );
    }
  }
  try {
    return (await umzug.up()).map((migration) => migration.name);
  } catch (error) {
    if (!(error instanceof loadUmzug().MigrationError)) throw error;
    // DDL commits statement by statement in MySQL, so the migrations before this one stay
    // applied and recorded; this one is not recorded and runs again next time.
    const original: unknown = error.cause;
    throw new MigrationError(
      `Migration ${error.migration.name} failed: ${messageOf(original)}. ` +
        'The migrations before it stay applied; it and the ones after it are still pending',
      { cause: original },
    );
  }
}

function umzugFor(
  connection: mysql.Connection,
  storage: MysqlStorage,
  log: Logger,
  options: MigrateOptions,
): Umzug<mysql.Connection> {
  const { Umzug } = loadUmzug();
  return new Umzug<mysql.Connection>({
    migrations: (options.migrations ?? releasedMigrations).map((migration) => ({
      name: migration.name,
      up: ({ context }) => migration.up(context),
      down: ({ context }) => migration.down(context),
    })),
    context: connection,
    storage,
    logger: {
      info: (event) => {
        if (event['event'] === 'migrated') log.info(`Migration applied: ${String(event['name'])}`);
      },
      warn: (event) => log.warn(`Migration warning: ${JSON.stringify(event)}`),
      error: (event) => log.error(`Migration error: ${JSON.stringify(event)}`),
      debug: () => undefined,
    },
  });
}

/** Applies every pending migration; returns the names applied by this call. */
export async function migrate(config: DatabaseConfig, log: Logger, options: MigrateOptions = {}): Promise<string[]> {
  try {
    return await withMigrationLock(config, log, (session) => session.applyPending(options));
  } catch (error) {
    if (error instanceof MigrationError) throw error;
    throw new MigrationError(`Migration failed: ${messageOf(error)}`, { cause: error });
  }
}

export async function migrationStatus(
  config: DatabaseConfig,
  log: Logger,
  options: MigrateOptions = {},
): Promise<MigrationStatus> {
  return withMigrationLock(config, log, (session) => session.status(options));
}

/** umzug, loaded only when there is migration work to do. */
function loadUmzug(): typeof import('umzug') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- deliberate lazy load, see applyPending
  return require('umzug') as typeof import('umzug');
}
