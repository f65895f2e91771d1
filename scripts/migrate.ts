// npm run migrate [-- --status]: applies pending migrations (or lists them) and exits.
import { ConfigError, databaseTarget, loadConfig } from '../src/platform/config';
import { migrate, MigrationError, migrationStatus } from '../src/platform/db/migrate';
import { migrationOptions } from '../src/platform/backups/migrationOptions';
import { configureLoggingFor, getLogger } from '../src/platform/logging/logger';
import { messageOf } from '../src/platform/util/errors';
import { runLoggedCommand } from '../src/platform/logging/oneShotCommand';

async function run(): Promise<number> {
  const config = loadConfig();
  configureLoggingFor(config, 'one-shot');
  const log = getLogger('migrations');
  const target = databaseTarget(config.db);
  const options = migrationOptions(config, getLogger('backup'));
  if (process.argv.includes('--status')) {
    const status = await migrationStatus(config.db, log, options);
    console.log(`Migrations of ${target}`);
    for (const name of status.applied) console.log(`  applied  ${name}`);
    for (const name of status.pending) console.log(`  pending  ${name}`);
    console.log(`${status.applied.length} applied, ${status.pending.length} pending`);
    return 0;
  }
  const applied = await migrate(config.db, log, options);
  console.log(
    applied.length === 0
      ? `${target}: schema is up to date`
      : `${target}: applied ${applied.length} migration(s): ${applied.join(', ')}`,
  );
  return 0;
}

runLoggedCommand('migrations', run, (error) =>
  error instanceof ConfigError || error instanceof MigrationError ? error.message : `Migration failed: ${messageOf(error)}`,
);
