// Migrations in operation: a failing migration stops `npm run migrate` and start-up with a message
// that names it, leaves the schema as it was and usable, and in production a backup is taken
// before anything is applied (by whichever process finds migrations pending).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { type DatabaseConfig, FAULT_INJECTION_PRODUCTION_OPT_IN } from '../src/platform/config';
import { migrate, MigrationError, migrationStatus } from '../src/platform/db/migrate';
import { migrations } from '../src/platform/db/migrations';
import { failingMigration } from '../src/platform/db/migrations/faults';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { runScript } from './helpers/scripts';
import { startService, tempDir } from './helpers/service';

const databases: TestDatabase[] = [];
test.after.always(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

async function database(): Promise<{ db: TestDatabase; config: DatabaseConfig }> {
  const db = await createTestDatabase('ra_migops');
  databases.push(db);
  const config = databaseConfig(db.name);
  return { db, config };
}

const released = migrations.map((migration) => migration.name);
const withFailure = [...migrations, failingMigration];
const log = getLogger('test');

test('a failing migration is named, recorded as pending, and the previous schema stays usable', async (t) => {
  const { db, config } = await database();
  await migrate(config, log);
  await db.query("INSERT INTO users (username, password_hash) VALUES ('before', 'x')");

  const error = await t.throwsAsync(migrate(config, log, { migrations: withFailure }), { instanceOf: MigrationError });
  t.regex(
    error?.message ?? '',
    /^Migration 900-fault-injected-failure failed: Duplicate column name 'fault_injected'\. The migrations before it stay applied/,
  );
  t.deepEqual(await migrationStatus(config, log, { migrations: withFailure }), {
    applied: released,
    pending: ['900-fault-injected-failure'],
  });
  await db.query("INSERT INTO users (username, password_hash) VALUES ('after', 'x')");
  const [stats] = await db.query<Array<{ total_users: number }>>('SELECT total_users FROM user_stats');
  t.is(Number(stats?.total_users), 2, 'tables and triggers work as before');
});

test('the step before applying runs once, only when something is pending, and its failure applies nothing', async (t) => {
  const { config } = await database();
  await t.throwsAsync(
    migrate(config, log, {
      beforeApply: async () => {
        throw new Error('disk full');
      },
    }),
    {
      message: `Not migrating: the step before applying ${released.join(', ')} failed (disk full); the schema is unchanged`,
    },
  );
  t.deepEqual((await migrationStatus(config, log)).applied, []);

  const calls: Array<[readonly string[], readonly string[]]> = [];
  const beforeApply = async (pending: readonly string[], applied: readonly string[]): Promise<void> => {
    calls.push([pending, applied]);
  };
  await migrate(config, log, { migrations: migrations.slice(0, 1), beforeApply });
  await migrate(config, log, { beforeApply });
  await migrate(config, log, { beforeApply });
  t.deepEqual(calls, [
    [released.slice(0, 1), []],
    [released.slice(1), released.slice(0, 1)],
  ]);
});

test('the service backs up, then stops start-up on a failing migration with a clear message, and starts on the previous schema', async (t) => {
  const { db } = await database();
  const logDir = tempDir('ra-migops-');
  const first = await startService({ env: db.env, logDir });
  t.is((await first.request('/api/register', { body: { username: 'kept', password: 'kept-password' } })).status, 201);
  await first.stop();

  // The worker that finds a migration pending takes the backup first, as npm run migrate does.
  const backupDir = path.join(logDir, 'backups');
  const failing = await startService({
    env: { ...db.env, FAULT_INJECTION: '1', FAULT_FAILING_MIGRATION: '1', BACKUP_BEFORE_MIGRATE: '1', BACKUP_DIR: backupDir },
    logDir,
    waitFor: 'none',
  });
  t.deepEqual(await failing.exited, { code: 1, signal: null });
  t.regex(
    failing.log(),
    / - lifecycle - FATAL - Start-up failed MigrationError: Migration 900-fault-injected-failure failed: Duplicate column name/,
  );
  t.regex(failing.log(), / - backup - INFO - Backup before migrating written: /);
  t.is(readdirSync(backupDir).filter((name) => name.endsWith('.sql.gz')).length, 1);

  const again = await startService({ env: db.env, logDir });
  try {
    const login = await again.request('/api/login', { body: { username: 'kept', password: 'kept-password' } });
    t.is(login.status, 200, login.text);
  } finally {
    await again.stop();
  }
});

test('npm run migrate in production backs up before applying, and --status lists what is pending', async (t) => {
  const { db } = await database();
  const dir = path.join(tempDir('ra-migops-'), 'backups');
  const env = {
    ...db.env,
    NODE_ENV: 'production',
    JWT_SECRET: 'production-secret-that-is-long-enough',
    BACKUP_DIR: dir,
    LOG_DIR: path.join(dir, '..', 'logs'),
  };
  const fresh = await runScript('migrate', [], { env });
  t.is(fresh.code, 0, fresh.stderr);
  t.throws(() => readdirSync(dir), undefined, 'an empty database is not backed up');

  const drill = {
    ...env,
    FAULT_INJECTION: '1',
    FAULT_INJECTION_IN_PRODUCTION: FAULT_INJECTION_PRODUCTION_OPT_IN,
    FAULT_FAILING_MIGRATION: '1',
  };
  const status = await runScript('migrate', ['--status'], { env: drill });
  t.true(
    status.stdout.includes(
      `${released.map((name) => `  applied  ${name}\n`).join('')}  pending  900-fault-injected-failure\n` +
        `${released.length} applied, 1 pending`,
    ),
    status.stdout,
  );

  const failed = await runScript('migrate', [], { env: drill });
  t.is(failed.code, 1);
  t.regex(failed.stderr, /^Migration 900-fault-injected-failure failed: Duplicate column name/m);
  // The dumps only: the backup job also keeps its status file (for the metrics) in the folder.
  const backups = readdirSync(dir).filter((name) => name.endsWith('.sql.gz'));
  t.is(backups.length, 1, 'the backup was taken before the migration ran');
  // Named apart from the scheduled backups (docs/backups-and-migrations.md).
  t.regex(backups[0] ?? '', new RegExp(`^${db.name}-\\d{8}T\\d{6}Z-predeploy\\.sql\\.gz$`));
});
