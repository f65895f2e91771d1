// The scheduled backup app of ecosystem.config.js, started as an operator would (`pm2 start
// ecosystem.config.js --only backup`) under a PM2 daemon of its own: a launch outside the
// schedule (pm2 start, a reload at a deploy) only registers the schedule, and each cron tick
// writes a backup and exits 0, not restarted.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseBackupName, utcStamp } from '../src/platform/backups/dumpFile';
import { migrate } from '../src/platform/db/migrate';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { ROOT, tempDir } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

// Every 15 seconds (croner reads a leading seconds field); the ecosystem file reads BACKUP_CRON.
// A launch up to half that interval after a scheduled time is its tick (src/backup/schedule.ts).
const TICK_MS = 15_000;
const SCHEDULE = '*/15 * * * * *';
/** Where in the interval the test launches the app itself: well past a tick's window, well before the next. */
const OFF_TICK_MS = 9000;

/** Sleeps until OFF_TICK_MS into the current (or next) interval. */
const untilOffTick = (): Promise<void> => sleep((OFF_TICK_MS - (Date.now() % TICK_MS) + TICK_MS) % TICK_MS);

/** Milliseconds from the scheduled time before a backup's UTC stamp to the stamp. */
function offsetInInterval(stamp: string): number {
  const iso = stamp.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
  return new Date(iso).getTime() % TICK_MS;
}

let sandbox: Pm2Sandbox | undefined;
let db: TestDatabase | undefined;

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

test('the backup app backs up at each tick and exits 0, and never at pm2 start or a reload', async (t) => {
  db = await createTestDatabase('ra_sched');
  await migrate(databaseConfig(db.name), getLogger('test'));
  await db.query("INSERT INTO users (username, password_hash) VALUES ('scheduled', 'x')");
  const backupDir = path.join(tempDir('ra-sched-'), 'backups');
  sandbox = await createPm2Sandbox({ ...db.env, BACKUP_CRON: SCHEDULE, BACKUP_DIR: backupDir, BACKUP_KEEP: '2' });
  const pm2 = sandbox;
  const backupApp = async () => (await pm2.list()).find((proc) => proc.name === 'backup');

  const launchesOutsideSchedule = (): number => pm2.backendLog().split('launched outside it').length - 1;

  await pm2.pm2('ping'); // the daemon first: its start-up must not eat into the time before a tick
  await untilOffTick();
  const firstTick = Math.ceil(Date.now() / TICK_MS) * TICK_MS;
  await pm2.pm2('start', path.join(ROOT, 'ecosystem.config.js'), '--only', 'backup', '--env', 'production');

  await waitFor('the launch at pm2 start', () => launchesOutsideSchedule() === 1, 15_000).catch((error: unknown) => {
    throw new Error(`${String(error)}\nbackend.log:\n${pm2.backendLog()}`);
  });
  t.regex(pm2.backendLog(), /Backup schedule registered with PM2 \(\*\/15 \* \* \* \* \*\); launched outside it .*: no backup now, the next at /);
  const files = await waitFor(
    'two scheduled backups',
    () => {
      const written = readdirSync(backupDir).filter((name) => !name.startsWith('.'));
      return written.length >= 2 ? written : undefined;
    },
    30_000,
    200,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\nbackend.log:\n${pm2.backendLog()}`);
  });
  // A backup taken by the launch would be stamped before the first tick (and still be kept).
  const stamps = files.map((name) => parseBackupName(db!.name, name)?.stamp ?? `not a backup name: ${name}`);
  t.true(stamps.every((stamp) => stamp >= utcStamp(new Date(firstTick))), `${files.join(', ')}; first tick ${utcStamp(new Date(firstTick))}`);
  t.regex(pm2.backendLog(), / - backup - INFO - Backup written: /);

  // A deploy reloads the ecosystem, which relaunches the app outside its schedule: no backup.
  await untilOffTick();
  await pm2.pm2('reload', path.join(ROOT, 'ecosystem.config.js'), '--only', 'backup', '--env', 'production');
  await waitFor('the launch at the reload', () => launchesOutsideSchedule() === 2, 15_000);
  await waitFor('the backup of the next tick', () => /Backup written: [\s\S]*Backup written: [\s\S]*launched outside it[\s\S]*Backup written: /.test(pm2.backendLog()), 30_000, 200);
  const all = readdirSync(backupDir).filter((name) => !name.startsWith('.'));
  t.is(all.length, 2, `BACKUP_KEEP=2 scheduled backups: ${all.join(', ')}`);
  // Every backup started right after a tick, none at the launches 9 s into an interval.
  for (const name of all) {
    const stamp = parseBackupName(db.name, name)?.stamp ?? '';
    t.true(offsetInInterval(stamp) < OFF_TICK_MS - 1000, `${name} was stamped ${offsetInInterval(stamp)} ms after a tick`);
  }

  const described = await backupApp();
  t.is(described?.pm2_env['cron_restart'], SCHEDULE, 'the schedule comes from BACKUP_CRON');
  t.is(described?.pm2_env['autorestart'], false);
  t.regex(String(described?.pm2_env['pm_exec_path']), /dist\/src\/backup\/main\.js$/);
  const finished = await waitFor('a finished run', async () => {
    const now = await backupApp();
    return now?.pm2_env.status === 'stopped' ? now : undefined;
  }, 10_000, 100);
  t.is(finished.pm2_env.exit_code, 0);
});
