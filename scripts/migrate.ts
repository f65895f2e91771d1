// npm run migrate [-- --status]: applies pending migrations (or lists them) and exits.
import { ConfigError, databaseTarget, loadConfig } from '../src/config';
import { migrate, MigrationError, migrationStatus } from '../src/db/migrate';
import { migrationOptions } from '../src/db/migrationOptions';
import { configureLoggingFor, getLogger, shutdownLogging } from '../src/logger';
import { messageOf } from '../src/util/errors';

async function run(): Promise<void> {
  const config = loadConfig();
  configureLoggingFor(config, false);
  const log = getLogger('migrations');
  const target = databaseTarget(config.db);
  const options = migrationOptions(config, getLogger('backup'));
  if (process.argv.includes('--status')) {
    const status = await migrationStatus(config.db, log, options);
    console.log(`Migrations of ${target}`);
    for (const name of status.applied) console.log(`  applied  ${name}`);
    for (const name of status.pending) console.log(`  pending  ${name}`);
    console.log(`${status.applied.length} applied, ${status.pending.length} pending`);
    return;
  }
  const applied = await migrate(config.db, log, options);
  console.log(
    applied.length === 0
      ? `${target}: schema is up to date`
      : `${target}: applied ${applied.length} migration(s): ${applied.join(', ')}`,
  );
}

run()
  .catch((error: unknown) => {
    const message =
      error instanceof ConfigError || error instanceof MigrationError ? error.message : `Migration failed: ${messageOf(error)}`;
    console.error(message);
    try {
      getLogger('migrations').error(message);
    } catch {
      // logging may not be configured yet (bad configuration)
    }
    process.exitCode = 1;
  })
  .finally(() => shutdownLogging());
