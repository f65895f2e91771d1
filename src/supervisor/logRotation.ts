// Rotation of the log files by the supervisor, the one process allowed to rotate them.
// backend.log and supervisor.log (the api's, backup's and supervisor's PM2 log files, see
// ecosystem.config.js) are renamed and PM2 is asked to reload the logs: every app reopens its
// files, and no line is lost. PM2's own pm2.log is copied and truncated (its daemon cannot reopen).
import path from 'node:path';
import type { Logger } from '../platform/logging/logger';
import { copyTruncateIfLarge, rotateIfLarge } from './logFiles';
import { access } from 'node:fs/promises';

export interface LogRotationOptions {
  readonly logDir: string;
  readonly maxBytes: number;
  readonly backups: number;
  readonly checkMs: number;
  /** The PM2 daemon's home, where its pm2.log is. */
  readonly pm2Home: string;
}

const ROTATED_BY_RENAME = ['backend.log', 'supervisor.log'] as const;

const exists = (file: string): Promise<boolean> => access(file).then(() => true, () => false);

/** Checks the sizes every checkMs; returns a function that stops the checks. */
export function startLogRotation(options: LogRotationOptions, reloadLogs: () => Promise<void>, log: Logger): () => void {
  const rotateLarge = async (): Promise<void> => {
    const rotated: string[] = [];
    for (const name of ROTATED_BY_RENAME) {
      try {
        if (await rotateIfLarge(path.join(options.logDir, name), options.maxBytes, options.backups)) rotated.push(name);
      } catch (error) {
        log.error(`Could not rotate ${name}`, error);
      }
    }
    if (rotated.length > 0) {
      await reloadLogs().catch((error: unknown) =>
        log.error('PM2 did not reopen the log files after a rotation; asking again at the next check', error),
      );
    }
    for (const name of rotated) log.info(`Rotated ${name} (over ${options.maxBytes} bytes)`);
    // A rename whose reload failed (here, or in a supervisor that died in between) leaves a file
    // missing and the apps writing to the renamed one: ask PM2 again until it has reopened them.
    if (rotated.length === 0) await reopenRenamedLogs(options.logDir, reloadLogs, log);
    if (await copyTruncateIfLarge(path.join(options.pm2Home, 'pm2.log'), options.maxBytes, options.backups)) {
      log.info(`Rotated pm2.log (over ${options.maxBytes} bytes; copied and truncated)`);
    }
  };
  let checking = false;
  const check = (): void => {
    if (checking) return; // a slow check (a busy disk, a slow daemon) is not overlapped
    checking = true;
    rotateLarge()
      .catch((error: unknown) => log.error('Could not rotate the logs', error))
      .finally(() => {
        checking = false;
      });
  };
  const timer = setInterval(check, options.checkMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A previous supervisor may have renamed a file and died before PM2 reloaded the logs; the apps
 * would then write to the renamed file for good. A missing file says so: reload the logs.
 */
export async function reopenRenamedLogs(logDir: string, reloadLogs: () => Promise<void>, log: Logger): Promise<void> {
  const missing: string[] = [];
  for (const name of ROTATED_BY_RENAME) if (!(await exists(path.join(logDir, name)))) missing.push(name);
  if (missing.length === 0) return;
  await reloadLogs();
  log.info(`Asked PM2 to reopen the log files (${missing.join(', ')} missing)`);
}
