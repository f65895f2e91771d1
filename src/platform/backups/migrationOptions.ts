// How this deployment migrates: which migrations (the released ones, plus the failing one when
// a drill asks for it) and what happens before any is applied (a backup, in production; hence
// this module sits with the backups). Used by `npm run migrate` and by every worker at start-up
// alike; under the migration lock, so only the process that finds something pending takes the
// backup.
import { createBackup } from './backup';
import { type BackupOutcome, recordBackupOutcomeOrWarn } from './status';
import type { Config } from '../config';
import type { Logger } from '../logging/logger';
import type { MigrateOptions } from '../db/migrate';
import { migrations } from '../db/migrations';
import { failingMigration } from '../db/migrations/faults';

export function migrationOptions(config: Config, log: Logger): MigrateOptions {
  return {
    migrations: config.faultFailingMigration ? [...migrations, failingMigration] : migrations,
    beforeApply: config.backup.beforeMigrate
      ? async (pending, applied) => {
          if (applied.length === 0) {
            log.info(`No backup before the first migrations of ${config.db.database}: it holds no data yet`);
            return;
          }
          log.info(`Backing up ${config.db.database} before applying ${pending.join(', ')}`);
          // Named apart (-predeploy) and kept apart: deploys never push the scheduled backups out.
          // Its outcome goes to the status file the metrics read, a failure included: a deploy
          // whose backup fails is what the backup-failure alert is for.
          const record = (outcome: BackupOutcome): Promise<void> =>
            recordBackupOutcomeOrWarn(config.backup.dir, config.db.database, outcome, log);
          let backup: Awaited<ReturnType<typeof createBackup>>;
          try {
            backup = await createBackup({ ...config.backup, db: config.db, kind: 'predeploy' });
          } catch (error) {
            await record({ ok: false });
            throw error;
          }
          log.info(`Backup before migrating written: ${backup.file} (${backup.bytes} bytes)`);
          await record({ ok: true, kind: 'predeploy', file: backup.file, durationMs: backup.durationMs });
        }
      : undefined,
  };
}
