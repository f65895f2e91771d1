// Entry of the scheduled PM2 app `backup` and of `npm run backup`: one run, then exit with its code.
import { CLEAN_EXIT_MESSAGE } from '../platform/lifecycle';
import { logFatalSync, shutdownLogging } from '../platform/logging/logger';
import { runBackupJob } from './job';

async function finish(code: number): Promise<void> {
  await shutdownLogging();
  process.exitCode = code;
  // A finished job must not stay "online" under PM2 until the next schedule because something
  // left a handle open.
  setTimeout(() => process.exit(code), 5000).unref();
  if (!process.send || !process.connected) return;
  // PM2 records a signal death as exit code 0 too: tell the supervisor this 0 was a finished run.
  if (code === 0) process.send(CLEAN_EXIT_MESSAGE, undefined, {}, () => process.disconnect());
  else process.disconnect();
}

runBackupJob()
  .catch((error: unknown) => {
    logFatalSync('backup', 'Backup run failed unexpectedly', error);
    return 1;
  })
  .then(finish)
  .catch(() => {
    process.exitCode = 1;
  });
