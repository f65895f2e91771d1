// One backup run as an operator or a schedule starts it (`npm run backup`, the PM2 app `backup`):
// logged to backend.log under the `backup` category, and a failure alerted to ALERT_WEBHOOK_URL.
// Resolves with the exit code; never rejects.
import { AlertSender } from '../alerts';
import { type Config, ConfigError, databaseTarget, type Env, loadConfig } from '../config';
import { configureLoggingFor, getLogger, logBadConfigurationSync } from '../logger';
import { createBackup } from './backup';
import { messageOf } from '../util/errors';

/** EX_CONFIG, as the api app uses for a bad configuration. */
const EXIT_BAD_CONFIG = 78;

/**
 * PM2 starts an app with cron_restart once at `pm2 start`, then at every scheduled time. Only
 * that first launch comes before any exit, and PM2 passes its record of the app (exit_code
 * included, once there is one) in the environment. So a deployment takes no unscheduled backup
 * unless BACKUP_ON_START asks for one.
 */
function isFirstLaunchByPm2(env: Env): boolean {
  return env['pm_id'] !== undefined && env['exit_code'] === undefined;
}

function readConfig(env: Env): Config | undefined {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    logBadConfigurationSync('backup', error, env);
    return undefined;
  }
}

export async function runBackupJob(env: Env = process.env): Promise<number> {
  const config = readConfig(env);
  if (!config) return EXIT_BAD_CONFIG;
  configureLoggingFor(config, 'one-shot');
  const log = getLogger('backup');
  if (isFirstLaunchByPm2(env) && !config.backup.onStart) {
    log.info('Backup schedule registered with PM2; the first backup runs at the next scheduled time');
    return 0;
  }

  const target = databaseTarget(config.db);
  // PM2 stops a run with SIGINT (a cron tick while the previous run still goes, `pm2 stop`).
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => stop.abort(`${signal} received`);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log.info(`Backup of ${target} into ${config.backup.dir} started`);
  try {
    const result = await createBackup({ ...config.backup, db: config.db, signal: stop.signal });
    const line =
      `Backup written: ${result.file} (${result.bytes} bytes compressed, ${result.uncompressedBytes} bytes of SQL, ` +
      `${result.durationMs} ms)` +
      (result.removed.length > 0 ? `; removed ${result.removed.length} old: ${result.removed.join(', ')}` : '');
    log.info(line);
    console.log(line);
    return 0;
  } catch (error) {
    const message = `Backup of ${target} failed: ${messageOf(error)}`;
    log.error(message);
    console.error(message);
    await new AlertSender(config.alertWebhookUrl, log).send({
      level: 'CRITICAL',
      app: 'backup',
      event: 'backup_failed',
      message,
      details: { database: config.db.database, server: `${config.db.host}:${config.db.port}`, dir: config.backup.dir },
    });
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
