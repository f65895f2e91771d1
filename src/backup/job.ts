// One backup run as an operator or a schedule starts it (`npm run backup`, the PM2 app `backup`):
// logged to backend.log under the `backup` category, and a failure alerted to ALERT_WEBHOOK_URL.
// Resolves with the exit code; never rejects.
import { AlertSender } from '../platform/alerts';
import { type Config, ConfigError, databaseTarget, type Env, loadConfig } from '../platform/config';
import { EXIT_BAD_CONFIGURATION, reportBadConfiguration } from '../platform/badConfiguration';
import { configureLoggingFor, getLogger } from '../platform/logging/logger';
import { createBackup } from '../platform/backups/backup';
import { type BackupKind } from '../platform/backups/dumpFile';
import { nextScheduledTime, scheduledSlot } from './schedule';
import { LeaseError, type SlotLease, takeScheduledSlot } from './lease';
import { type BackupOutcome, recordBackupOutcomeOrWarn } from '../platform/backups/status';
import { messageOf } from '../platform/util/errors';

/** ecosystem.config.js's default for BACKUP_CRON. */
const DEFAULT_BACKUP_CRON = '30 1 * * *';

/** Beyond the other host's own bound on its dump (BACKUP_TIMEOUT_SECONDS), before giving up waiting for it. */
const LEASE_WAIT_MARGIN_MS = 60_000;

/** What a launch does: a backup of this kind (a scheduled tick names its slot, shared by every host), or nothing. */
type Launch = { readonly kind: BackupKind; readonly slot?: Date } | { readonly skip: string };

/**
 * Which backup this run takes, if any. `npm run backup` (not under PM2): one now. Under PM2 the
 * app is launched at each BACKUP_CRON time, and also at every `pm2 start`, reload or restart of
 * the ecosystem (each deploy) and `pm2 resurrect`: only a launch at a scheduled time backs up, so
 * deploys never push scheduled backups out. PM2 hands the app its schedule (cron_restart) and the
 * launch time (pm_uptime) in the environment. BACKUP_ON_START=1: other launches back up too,
 * named and kept as deploy backups. A tick's backup is taken by one host of those sharing the
 * database (lease.ts); `npm run backup` and deploy backups are this host's own.
 */
function backupKindOfLaunch(env: Env, onStart: boolean): Launch {
  if (env['pm_id'] === undefined) return { kind: 'scheduled' };
  const pattern = env['cron_restart'] || env['BACKUP_CRON'] || DEFAULT_BACKUP_CRON;
  const launchedAt = Number(env['pm_uptime']) || Date.now() - Math.round(process.uptime() * 1000);
  const slot = scheduledSlot(pattern, launchedAt);
  if (slot) return { kind: 'scheduled', slot };
  if (onStart) return { kind: 'predeploy' };
  const next = nextScheduledTime(pattern, new Date());
  return {
    skip:
      `Backup schedule registered with PM2 (${pattern}); launched outside it (pm2 start, reload or resurrect): ` +
      `no backup now, the next at ${next ? next.toISOString() : 'no further time'}`,
  };
}

/** The configuration, or undefined once a bad one was reported (to backend.log and the supervisor). */
async function readConfig(env: Env): Promise<Config | undefined> {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    await reportBadConfiguration('backup', error, env);
    return undefined;
  }
}

/**
 * A scheduled run that did not take its slot because it stopped waiting for another host (a stop,
 * or the wait bound passed): not a failure of this host, since the host holding the lock decides
 * the slot, and a failure here would raise the backup alerts on a host that had nothing to do.
 */
function notTakenLine(slot: Date, hostId: string, error: LeaseError): string {
  const holder = error.slotRow
    ? `host ${error.slotRow.hostId} holds it (${error.slotRow.outcome} since ${error.slotRow.startedAt})`
    : 'no host is recorded as its taker yet';
  return `Scheduled backup of ${slot.toISOString()} not taken by this host (${hostId}): ${error.message}; ${holder}. Not a failure of this host`;
}

/** `stop`: aborting it stops the run as SIGINT/SIGTERM does (for callers in-process, e.g. tests). */
export async function runBackupJob(env: Env = process.env, stop?: AbortSignal): Promise<number> {
  const config = await readConfig(env);
  if (!config) return EXIT_BAD_CONFIGURATION;
  configureLoggingFor(config, 'one-shot');
  const log = getLogger('backup');
  const launch = backupKindOfLaunch(env, config.backup.onStart);
  if ('skip' in launch) {
    log.info(launch.skip);
    return 0;
  }

  const target = databaseTarget(config.db);
  // PM2 stops a run with SIGINT (a cron tick while the previous run still goes, `pm2 stop`).
  const stopping = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => stopping.abort(`${signal} received`);
  const stopSignal = stop ? AbortSignal.any([stopping.signal, stop]) : stopping.signal;
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // For the api's /metrics (status.ts).
  const record = (outcome: BackupOutcome): Promise<void> =>
    recordBackupOutcomeOrWarn(config.backup.dir, config.db.database, outcome, log);
  let lease: SlotLease | undefined;
  try {
    if ('slot' in launch && launch.slot) {
      const decision = await takeScheduledSlot({
        db: config.db,
        hostId: config.hostId,
        slot: launch.slot,
        maxWaitMs: config.backup.timeoutMs + LEASE_WAIT_MARGIN_MS,
        signal: stopSignal,
        log,
      });
      if (!decision.taken) {
        log.info(`Scheduled backup of ${launch.slot.toISOString()} already taken by host ${decision.byHost}: nothing to do`);
        return 0;
      }
      lease = decision.lease;
      log.info(`Scheduled backup of ${launch.slot.toISOString()} taken by this host (${config.hostId})`);
    }
    log.info(`Backup of ${target} into ${config.backup.dir} started`);
    const result = await createBackup({ ...config.backup, db: config.db, kind: launch.kind, signal: stopSignal });
    const line =
      `Backup written: ${result.file} (${result.bytes} bytes compressed, ${result.uncompressedBytes} bytes of SQL, ` +
      `${result.durationMs} ms)` +
      (result.removed.length > 0 ? `; removed ${result.removed.length} old: ${result.removed.join(', ')}` : '');
    log.info(line);
    console.log(line);
    await record({ ok: true, kind: launch.kind, file: result.file, durationMs: result.durationMs });
    await lease?.finish({ ok: true, file: result.file }).catch((error: unknown) => {
      // The dump is written; another host may take the slot again, which costs a second dump, not a missing one.
      log.warn(`Could not record the scheduled backup as done (${messageOf(error)}); another host may back this slot up again`);
    });
    return 0;
  } catch (error) {
    if (error instanceof LeaseError && error.kind !== 'unreachable' && 'slot' in launch && launch.slot) {
      log.warn(notTakenLine(launch.slot, config.hostId, error));
      return 0;
    }
    const message = `Backup of ${target} failed: ${messageOf(error)}`;
    log.error(message);
    console.error(message);
    await record({ ok: false });
    await lease?.finish({ ok: false }).catch(() => undefined);
    await new AlertSender(config.alertWebhookUrl, log).send({
      level: 'CRITICAL',
      app: 'backup',
      event: 'backup_failed',
      message,
      details: { database: config.db.database, server: `${config.db.host}:${config.db.port}`, dir: config.backup.dir },
    });
    return 1;
  } finally {
    await lease?.release();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
