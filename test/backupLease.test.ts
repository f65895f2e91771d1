// The scheduled backup across hosts sharing one database: each host's PM2 launches the job at the
// scheduled time, exactly one dumps (the lease in scheduled_backups, under a named lock), and a
// host that dies while holding the lock hands the slot over. The job runs in this process as PM2
// would launch it (pm_id, cron_restart, pm_uptime), with a HOST_ID per "host".
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import mysql from 'mysql2/promise';
import { runBackupJob } from '../src/backup/job';
import { migrate } from '../src/platform/db/migrate';
import { scheduledBackupLockName } from '../src/platform/db/locks';
import { getLogger } from '../src/platform/logging/logger';
import { readStatusFile, statusFileName } from '../src/platform/backups/status';
import { createTestDatabase, databaseConfig, SHARED_DB, type TestDatabase } from './helpers/database';
import { freePort } from './helpers/ports';
import { tempDir } from './helpers/service';
import { waitFor } from './helpers/wait';
import { startWebhookReceiver } from './helpers/webhook';

const CRON = '0 3 * * *';
/** A past tick of CRON, in local time as PM2 schedules. */
const SLOT = new Date(2026, 0, 15, 3, 0, 0);

let db: TestDatabase;

test.before(async () => {
  db = await createTestDatabase('ra_lease');
  await migrate(databaseConfig(db.name), getLogger('test'));
  await db.query("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(20))");
  await db.query("INSERT INTO notes VALUES (1, 'kept')");
});

test.after.always(async () => {
  await db.drop();
});

/** A launch of the PM2 app `backup` on host `hostId` at `slot` (plus half a second, as PM2 launches). */
function scheduledLaunch(hostId: string, dirs: { backups: string; logs: string }, slot = SLOT, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '',
    NODE_ENV: 'test',
    ...db.env,
    HOST_ID: hostId,
    BACKUP_DIR: dirs.backups,
    LOG_DIR: dirs.logs,
    pm_id: '3',
    cron_restart: CRON,
    pm_uptime: String(slot.getTime() + 500),
    ...extra,
  };
}

const dumpsIn = (dir: string): string[] => readdirSync(dir).filter((name) => name.endsWith('.sql.gz'));
const logOf = (dir: string): string => {
  try {
    return readFileSync(path.join(dir, 'backend.log'), 'utf8');
  } catch {
    return '';
  }
};

interface SlotRow {
  host_id: string;
  outcome: string;
  file: string | null;
  ended_at: Date | null;
}

async function slotRow(slot: Date): Promise<SlotRow | undefined> {
  const rows = await db.query<SlotRow[]>(
    'SELECT host_id, outcome, file, ended_at FROM scheduled_backups WHERE slot = ?',
    [slot.toISOString().slice(0, 23).replace('T', ' ')],
  );
  return rows[0];
}

test.serial('two hosts launched at the same scheduled time: exactly one dumps, the other finds it taken', async (t) => {
  // One backup folder for both hosts (as a shared mount would be), so "one dump" is one file.
  const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
  const codes = await Promise.all([runBackupJob(scheduledLaunch('h1', dirs)), runBackupJob(scheduledLaunch('h2', dirs))]);
  t.deepEqual(codes, [0, 0]);
  t.is(dumpsIn(dirs.backups).length, 1, `one dump: ${dumpsIn(dirs.backups).join(', ')}`);

  const row = await slotRow(SLOT);
  t.is(row?.outcome, 'done');
  t.truthy(row?.ended_at);
  t.is(row?.file, path.join(dirs.backups, dumpsIn(dirs.backups)[0] ?? ''));
  const other = row?.host_id === 'h1' ? 'h2' : 'h1';
  const taken = new RegExp(
    `INFO - Scheduled backup of ${SLOT.toISOString().replace(/\./g, '\\.')} already taken by host ${row?.host_id}: nothing to do`,
    'g',
  );
  const log = await waitFor('the "already taken" line', () => (taken.test(logOf(dirs.logs)) ? logOf(dirs.logs) : undefined));
  t.is(log.match(taken)?.length, 1, log);
  t.regex(log, new RegExp(`taken by this host \\(${row?.host_id}\\)`));
  t.notRegex(log, new RegExp(`taken by this host \\(${other}\\)`));

  // The same slot launched again later (a restart of the app within the tick's window): nothing more.
  t.is(await runBackupJob(scheduledLaunch(other, dirs)), 0);
  t.is(dumpsIn(dirs.backups).length, 1);
});

test.serial('a host holding the lock that dies without finishing hands the slot over to the waiting host', async (t) => {
  const slot = new Date(2026, 0, 16, 3, 0, 0);
  const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
  // "Host h9": holds the lock on its own connection and has recorded itself as the taker.
  const h9 = await mysql.createConnection({ ...SHARED_DB, database: db.name });
  const [locked] = await h9.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS got', [scheduledBackupLockName(db.name)]);
  t.is(locked[0]?.['got'], 1);
  await h9.query("INSERT INTO scheduled_backups (slot, host_id, started_at, outcome) VALUES (?, 'h9', UTC_TIMESTAMP(3), 'running')", [
    slot.toISOString().slice(0, 23).replace('T', ' '),
  ]);

  const run = runBackupJob(scheduledLaunch('h2', dirs, slot));
  await waitFor('h2 to wait for h9', () => /another host holds the lease \(host h9, running since [^)]+\); waiting up to/.test(logOf(dirs.logs)));
  t.deepEqual(existsSync(dirs.backups) ? dumpsIn(dirs.backups) : [], [], 'no dump while h9 holds the lock');

  h9.destroy(); // h9 dies: its connection, and with it the lock, is gone
  t.is(await run, 0);
  t.is(dumpsIn(dirs.backups).length, 1);
  const row = await slotRow(slot);
  t.like(row, { host_id: 'h2', outcome: 'done' });
  await waitFor('the take-over line', () =>
    /WARN - Scheduled backup of \S+: host h9 took it at \S+ and stopped without finishing \(its lock is gone\); taking over/.test(logOf(dirs.logs)),
  );
});

test.serial('the database out of reach: the scheduled run fails at once with a clear error, exit 1 and an alert', async (t) => {
  const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
  const webhook = await startWebhookReceiver();
  try {
    const started = Date.now();
    const code = await runBackupJob(
      scheduledLaunch('h1', dirs, SLOT, { MYSQL_PORT: String(await freePort()), DB_CONNECT_TIMEOUT_MS: '1000', ALERT_WEBHOOK_URL: webhook.url }),
    );
    t.is(code, 1);
    t.true(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    await waitFor('the failure line', () =>
      /ERROR - Backup of \S+ failed: cannot reach the database to take the scheduled backup lease: .*ECONNREFUSED/.test(logOf(dirs.logs)),
    );
    await waitFor('the alert', () => webhook.received.length > 0);
    t.like(webhook.received[0], { event: 'backup_failed', app: 'backup' });
  } finally {
    await webhook.close();
  }
});

test.serial('a scheduled time reached while the migrations are still running (a first start) waits for them, then backs up', async (t) => {
  const fresh = await createTestDatabase('ra_lease_fresh');
  try {
    const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
    const run = runBackupJob({ ...scheduledLaunch('h1', dirs), ...fresh.env });
    await waitFor('the wait for the migrations', () => /waiting for the migrations/.test(logOf(dirs.logs)));
    // The api's start-up, migrating meanwhile.
    await migrate(databaseConfig(fresh.name), getLogger('test'));
    t.is(await run, 0, logOf(dirs.logs));
    t.is(dumpsIn(dirs.backups).length, 1);
    const rows = await fresh.query<Array<{ host_id: string; outcome: string }>>('SELECT host_id, outcome FROM scheduled_backups');
    t.deepEqual(rows.map((row) => ({ ...row })), [{ host_id: 'h1', outcome: 'done' }]);
    t.notRegex(logOf(dirs.logs), /Backup of .* failed/);
  } finally {
    await fresh.drop();
  }
});

/** "Host h9": holds the lock on its own connection and is recorded as the slot's taker. */
async function holdAsH9(slot: Date): Promise<mysql.Connection> {
  const h9 = await mysql.createConnection({ ...SHARED_DB, database: db.name });
  const [locked] = await h9.query<mysql.RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS got', [scheduledBackupLockName(db.name)]);
  if (locked[0]?.['got'] !== 1) throw new Error('h9 could not take the lock');
  await h9.query("INSERT INTO scheduled_backups (slot, host_id, started_at, outcome) VALUES (?, 'h9', UTC_TIMESTAMP(3), 'running')", [
    slot.toISOString().slice(0, 23).replace('T', ' '),
  ]);
  return h9;
}

test.serial('a host stopped while waiting for another host\'s lock did not take the slot: a WARN, exit 0, no failure recorded, no alert', async (t) => {
  const slot = new Date(2026, 0, 17, 3, 0, 0);
  const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
  mkdirSync(dirs.backups); // so a failure, if one were recorded, would be written
  const webhook = await startWebhookReceiver();
  const h9 = await holdAsH9(slot);
  try {
    const stop = new AbortController();
    const run = runBackupJob(scheduledLaunch('h2', dirs, slot, { ALERT_WEBHOOK_URL: webhook.url }), stop.signal);
    await waitFor('h2 to wait for h9', () => /another host holds the lease \(host h9, running since [^)]+\); waiting up to/.test(logOf(dirs.logs)));
    stop.abort('SIGINT received'); // as PM2's SIGINT does
    t.is(await run, 0);
    const log = await waitFor('the "not taken" line', () =>
      /WARN - Scheduled backup of \S+ not taken by this host \(h2\): stopped \(SIGINT received\) while waiting for another host's lock; host h9 holds it \(running since \S+\)\. Not a failure of this host/.test(
        logOf(dirs.logs),
      )
        ? logOf(dirs.logs)
        : undefined,
    );
    t.notRegex(log, /ERROR|failed/);
    t.false(existsSync(path.join(dirs.backups, statusFileName(db.name))), 'no status file written');
    t.is((await readStatusFile(dirs.backups, db.name)).failures, 0);
    t.deepEqual(dumpsIn(dirs.backups), []);
    t.deepEqual(webhook.received, [], 'no alert');
    t.like(await slotRow(slot), { host_id: 'h9', outcome: 'running' });
  } finally {
    h9.destroy();
    await webhook.close();
  }
});

test.serial('the lease connection killed by the server while the dump runs: a WARN "lease lost", the backup still finishes', async (t) => {
  const slot = new Date(2026, 0, 18, 3, 0, 0);
  const dirs = { backups: path.join(tempDir('ra-lease-'), 'backups'), logs: tempDir('ra-lease-logs-') };
  // Holds the dump at the notes table's rows, so the lease is held long enough to kill its connection.
  const blocker = await mysql.createConnection({ ...SHARED_DB, database: db.name });
  const admin = await mysql.createConnection({ ...SHARED_DB, database: db.name });
  try {
    await blocker.query('LOCK TABLES notes WRITE');
    const run = runBackupJob(scheduledLaunch('h1', dirs, slot));
    await waitFor('h1 to take the slot', async () => (await slotRow(slot))?.outcome === 'running');
    const [holders] = await admin.query<mysql.RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS id', [scheduledBackupLockName(db.name)]);
    const leaseConnectionId = Number(holders[0]?.['id']);
    t.true(leaseConnectionId > 0);
    await admin.query(`KILL ${leaseConnectionId}`);
    await waitFor('the "lease lost" line', () =>
      /WARN - Scheduled backup of \S+: lease lost \([^)]*\); another host may take the slot over and back it up too/.test(logOf(dirs.logs)),
    );
    await blocker.query('UNLOCK TABLES');
    t.is(await run, 0, logOf(dirs.logs));
    t.is(dumpsIn(dirs.backups).length, 1);
    // Recorded as done on a new connection: no other host took the slot over meanwhile.
    t.like(await slotRow(slot), { host_id: 'h1', outcome: 'done' });
    t.notRegex(logOf(dirs.logs), /ERROR|Could not record/);
  } finally {
    blocker.destroy();
    await admin.end();
  }
});
