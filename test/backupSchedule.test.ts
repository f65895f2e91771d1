// The scheduled backup app of ecosystem.config.js under a real PM2 daemon of its own (its own
// PM2_HOME, killed at the end; no other daemon is touched): the launch at `pm2 start` only
// registers the schedule, and each cron tick then writes a backup and exits 0, not restarted.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import type { StartOptions } from 'pm2';
import { migrate } from '../src/db/migrate';
import { getLogger } from '../src/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

// Short and directly under /tmp: PM2's socket path must stay under about 107 characters.
const pm2Home = mkdtempSync('/tmp/ra-pm2-');
process.env['PM2_HOME'] = pm2Home;
// Every 5 seconds (croner reads a leading seconds field); the ecosystem file reads it when loaded.
const TICK_MS = 5000;
process.env['BACKUP_CRON'] = '*/5 * * * * *';

type Pm2 = typeof import('pm2');
let pm2: Pm2 | undefined;
let db: TestDatabase | undefined;

function call<T>(run: (done: (error: Error | null, result: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((error, result) => (error ? reject(error) : resolve(result))));
}

test.after.always(async () => {
  if (pm2) {
    const daemon = pm2;
    await call((done) => daemon.delete('backup', (error) => done(null, error))).catch(() => undefined);
    daemon.disconnect();
    // The CLI's `pm2 kill` for this home only; the API's killDaemon leaves a timer that keeps
    // this process from exiting.
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'pm2'), ['kill'], {
      env: { ...process.env, PM2_HOME: pm2Home },
      stdio: 'ignore',
    });
  }
  await db?.drop();
  rmSync(pm2Home, { recursive: true, force: true });
});

test('the backup app registers its schedule at pm2 start, then backs up at each tick and exits 0', async (t) => {
  db = await createTestDatabase('ra_sched');
  const config = databaseConfig(db.name);
  await migrate(config, getLogger('test'));
  await db.query("INSERT INTO users (username, password_hash) VALUES ('scheduled', 'x')");

  const work = mkdtempSync('/tmp/ra-sched-');
  const backupDir = path.join(work, 'backups');
  const logFile = path.join(work, 'logs', 'backend.log');
  // Loaded only now: PM2_HOME must be set before pm2 is first required.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ecosystem = require(path.join(ROOT, 'ecosystem.config.js')) as { apps: Array<StartOptions & { cron_restart?: string }> };
  const app = ecosystem.apps.find((entry) => entry.name === 'backup');
  if (!app) throw new Error('ecosystem.config.js has no app named backup');
  t.is(app.cron_restart, '*/5 * * * * *', 'the schedule comes from BACKUP_CRON');
  t.is(app.autorestart, false);
  t.regex(String(app.script), /dist\/src\/backup\/main\.js$/);

  const daemon = (await import('pm2')).default;
  pm2 = daemon;
  await call<void>((done) => daemon.connect((error) => done(error, undefined)));
  // A tick restarts whatever runs. Started just before one, the launch would be cut short before
  // it logs (and its successor, finding an exit code, takes a backup): start just after one.
  await sleep(TICK_MS - (Date.now() % TICK_MS) + 100);
  await call((done) =>
    daemon.start(
      {
        ...app,
        env: { ...db!.env, NODE_ENV: 'test', BACKUP_DIR: backupDir, LOG_DIR: path.dirname(logFile), BACKUP_KEEP: '2' },
      } as StartOptions,
      done,
    ),
  );

  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  await waitFor('the launch at pm2 start', () => log().includes('Backup schedule registered with PM2'), 15_000).catch(
    (error: unknown) => {
      throw new Error(`${String(error)}\nbackend.log:\n${log()}`);
    },
  );
  const files = await waitFor(
    'two scheduled backups',
    () => {
      const written = readdirSync(backupDir, { withFileTypes: true }).filter((entry) => !entry.name.startsWith('.'));
      return written.length >= 2 ? written.map((entry) => entry.name) : undefined;
    },
    30_000,
    200,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\nbackend.log:\n${log()}`);
  });
  t.true(files.every((name) => name.startsWith(`${db!.name}-`) && name.endsWith('.sql.gz')), files.join(', '));
  const lines = log().split('\n');
  const registered = lines.findIndex((line) => line.includes('Backup schedule registered with PM2'));
  const firstStart = lines.findIndex((line) => / - backup - INFO - Backup of .* started/.test(line));
  t.true(registered >= 0 && registered < firstStart, 'the launch at pm2 start took no backup');
  t.regex(log(), / - backup - INFO - Backup written: /);

  const [described] = await call<import('pm2').ProcessDescription[]>((done) => daemon.describe('backup', done));
  const env = described?.pm2_env as { autorestart?: boolean; exit_code?: number; cron_restart?: string } | undefined;
  t.is(env?.autorestart, false);
  t.is(env?.cron_restart, '*/5 * * * * *');
  await waitFor('a finished run', async () => {
    const [now] = await call<import('pm2').ProcessDescription[]>((done) => daemon.describe('backup', done));
    return now?.pm2_env?.status === 'stopped' ? now : undefined;
  }, 10_000, 100);
  const [finished] = await call<import('pm2').ProcessDescription[]>((done) => daemon.describe('backup', done));
  t.is((finished?.pm2_env as { exit_code?: number } | undefined)?.exit_code, 0);
  rmSync(work, { recursive: true, force: true });
});
