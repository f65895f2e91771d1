// The scheduled backup app of ecosystem.config.js, started as an operator would (`pm2 start
// ecosystem.config.js --only backup`) under a PM2 daemon of its own: the launch at `pm2 start`
// only registers the schedule, and each cron tick then writes a backup and exits 0, not restarted.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parseBackupName, utcStamp } from '../src/backup/dumpFile';
import { migrate } from '../src/db/migrate';
import { getLogger } from '../src/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { ROOT, tempDir } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

// Every 5 seconds (croner reads a leading seconds field); the ecosystem file reads BACKUP_CRON.
const TICK_MS = 5000;
const SCHEDULE = '*/5 * * * * *';

let sandbox: Pm2Sandbox | undefined;
let db: TestDatabase | undefined;

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

test('the backup app registers its schedule at pm2 start, then backs up at each tick and exits 0', async (t) => {
  db = await createTestDatabase('ra_sched');
  await migrate(databaseConfig(db.name), getLogger('test'));
  await db.query("INSERT INTO users (username, password_hash) VALUES ('scheduled', 'x')");
  const backupDir = path.join(tempDir('ra-sched-'), 'backups');
  sandbox = await createPm2Sandbox({ ...db.env, BACKUP_CRON: SCHEDULE, BACKUP_DIR: backupDir, BACKUP_KEEP: '2' });
  const pm2 = sandbox;
  const backupApp = async () => (await pm2.list()).find((proc) => proc.name === 'backup');

  await pm2.pm2('ping'); // the daemon first: its start-up must not eat into the time before a tick
  // A tick restarts whatever runs. Started just before one, the launch would be cut short before
  // it logs (and its successor, finding an exit code, takes a backup): start just after one.
  await sleep(TICK_MS - (Date.now() % TICK_MS) + 100);
  const firstTick = Math.ceil(Date.now() / TICK_MS) * TICK_MS;
  await pm2.pm2('start', path.join(ROOT, 'ecosystem.config.js'), '--only', 'backup', '--env', 'production');

  await waitFor('the launch at pm2 start', () => pm2.backendLog().includes('Backup schedule registered with PM2'), 15_000).catch(
    (error: unknown) => {
      throw new Error(`${String(error)}\nbackend.log:\n${pm2.backendLog()}`);
    },
  );
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
