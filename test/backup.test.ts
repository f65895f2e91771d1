// Backups and restores through the real commands, against real databases and the real service:
// what is backed up can be restored and logged into, a dump taken under load is consistent, old
// backups go, a bad file changes nothing, and a failed backup leaves nothing and alerts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import test from 'ava';
import { utcStamp } from '../src/platform/backups/dumpFile';
import { readStatusFile } from '../src/platform/backups/status';
import { RETRY_AFTER_SECONDS } from '../src/api/http/errors';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { freePort } from './helpers/ports';
import { runBackup, runScript } from './helpers/scripts';
import { startService, type Service, tempDir } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';
import { startWebhookReceiver } from './helpers/webhook';

/** The folder's files, without the status file each run updates for /metrics (src/platform/backups/status.ts). */
const backupFolder = (dir: string): string[] => readdirSync(dir).filter((name) => !name.endsWith('-backup-status.json'));

const BACKUP_NAME = /^[A-Za-z0-9_]+-\d{8}T\d{6}Z(-\d+)?\.sql\.gz$/;

const databases: TestDatabase[] = [];
const services: Service[] = [];

test.after.always(async () => {
  await Promise.all(services.map((service) => service.stop()));
  await Promise.all(databases.map((db) => db.drop()));
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase('ra_backup');
  databases.push(db);
  return db;
}

async function service(db: TestDatabase): Promise<Service> {
  const started = await startService({ env: { ...db.env, RATE_LIMIT_PER_MINUTE: '0' } });
  services.push(started);
  return started;
}

function backupEnv(db: TestDatabase, dir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...db.env, BACKUP_DIR: dir, LOG_DIR: path.join(dir, '..', 'logs'), ...extra };
}

/** A BACKUP_DIR not made yet (the backup makes it), beside the LOG_DIR backupEnv gives. */
function backupDir(): string {
  return path.join(tempDir('ra-bk-'), 'backups');
}

/**
 * A PATH whose first mariadb-dump is a stand-in: it answers --version as the real one does and
 * runs `body` (sh) for the dump itself.
 */
function pathWithFakeDumpTool(body: readonly string[]): string {
  const bin = tempDir('ra-fakebin-');
  writeFileSync(path.join(bin, 'mariadb-dump'), ['#!/bin/sh', '[ "$1" = --version ] && exit 0', ...body].join('\n'), {
    mode: 0o755,
  });
  return `${bin}:${process.env['PATH'] ?? ''}`;
}

/** Runs a backup that must succeed; returns the file it wrote. */
async function backupOf(db: TestDatabase, dir: string, extra: Record<string, string> = {}): Promise<string> {
  const run = await runBackup({ env: backupEnv(db, dir, extra) });
  if (run.code !== 0) throw new Error(`backup failed (${run.code}): ${run.stderr}`);
  const file = /Backup written: (\S+)/.exec(run.stdout)?.[1];
  if (!file) throw new Error(`no file named in: ${run.stdout}`);
  return file;
}

async function userCount(db: TestDatabase): Promise<{ rows: number; counted: number }> {
  const [rows] = await db.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM users');
  const [stats] = await db.query<Array<{ total_users: number }>>('SELECT total_users FROM user_stats WHERE id = 1');
  return { rows: Number(rows?.n), counted: Number(stats?.total_users) };
}

const password = (username: string): string => `pw-of-${username}-long`;

test('backup, drop the users table, restore while the service runs: the same users log in', async (t) => {
  const db = await database();
  const api = await service(db);
  const names = ['alice', 'bob', 'carol'];
  for (const username of names) {
    t.is((await api.request('/api/register', { body: { username, password: password(username) } })).status, 201);
  }
  const dir = backupDir();
  const file = await backupOf(db, dir);
  t.regex(path.basename(file), BACKUP_NAME);
  t.regex(path.basename(file), new RegExp(`^${db.name}-`));
  t.is(statSync(file).mode & 0o777, 0o600, 'dumps hold password hashes: owner only');
  t.is(statSync(dir).mode & 0o777, 0o700, 'and so does their folder');
  t.deepEqual(backupFolder(dir), [path.basename(file)], 'no partial file left');
  const sql = gunzipSync(readFileSync(file)).toString();
  t.regex(sql, /CREATE TABLE `users`/);
  t.regex(sql, /TRIGGER users_count_insert/);
  t.regex(sql, /-- Dump completed on /);

  await db.query('DROP TABLE users');
  const lost = await api.request('/api/login', { body: { username: 'alice', password: password('alice') } });
  t.is(lost.status, 503, 'a missing table is an outage, not a 500');
  t.is(lost.headers['retry-after'], String(RETRY_AFTER_SECONDS));

  // Logins keep coming during the restore: each is answered 200 or 503, never a 500 or a hang.
  let restoring = true;
  const duringRestore: number[] = [];
  const probing = (async () => {
    while (restoring) {
      duringRestore.push((await api.request('/api/login', { body: { username: 'bob', password: password('bob') } })).status);
    }
  })();
  const restore = await runScript('restore', [file, '--yes'], { env: backupEnv(db, dir) });
  restoring = false;
  await probing;
  t.is(restore.code, 0, restore.stderr);
  t.regex(restore.stdout, /Restored .* 3 users/);
  t.deepEqual(duringRestore.filter((status) => status !== 200 && status !== 503), []);
  // The dropped table alone answers 503 too: the log line shows the restore lock was seen.
  t.regex(api.log(), /Database unreachable \(DB_RESTORING: a restore of \w+ is under way\)/);

  await waitFor('the service to serve again', async () => (await api.request('/health')).status === 200, 5000, 50);
  for (const username of names) {
    const login = await api.request('/api/login', { body: { username, password: password(username) } });
    t.is(login.status, 200, `${username}: ${login.text}`);
  }
  const status = await api.request('/api/status');
  t.is(status.body.stats.total_users, 3, 'the trigger-kept count is right after the restore');
  t.deepEqual(await userCount(db), { rows: 3, counted: 3 });
  t.regex(readFileSync(path.join(dir, '..', 'logs', 'backend.log'), 'utf8'), / - backup - INFO - Backup written: /);
});

test('a backup taken while users register is one consistent snapshot, and every user in it logs in', async (t) => {
  const db = await database();
  const api = await service(db);
  const registered: string[] = [];
  let registering = true;
  const registrations = [0, 1].map(async (lane) => {
    for (let i = 0; registering; i++) {
      const username = `load${lane}x${i}`;
      const reply = await api.request('/api/register', { body: { username, password: password(username) } });
      if (reply.status === 201) registered.push(username);
    }
  });
  const waitForUsers = async (n: number): Promise<void> => {
    while (registered.length < n) await sleep(20);
  };
  await waitForUsers(10);
  const dir = backupDir();
  const file = await backupOf(db, dir);
  const registeredByBackupEnd = registered.length;
  await waitForUsers(registeredByBackupEnd + 5);
  registering = false;
  await Promise.all(registrations);

  // Load the dump as it is (no recount) into a fresh database: the counter kept by triggers must
  // match the rows, which holds only if both tables come from the same instant.
  const copy = await database();
  execFileSync('sh', ['-c', `gunzip -c '${file}' | mariadb -h 127.0.0.1 -P ${copy.env['MYSQL_PORT']} -u root ${copy.name}`]);
  const snapshot = await userCount(copy);
  t.true(snapshot.rows >= 10, `${snapshot.rows} users in the dump`);
  // Taken before the backup ended: at most the two registrations in flight then were not answered yet.
  t.true(snapshot.rows <= registeredByBackupEnd + 2, `${snapshot.rows} users in the dump, ${registeredByBackupEnd} answered by then`);
  t.is(snapshot.counted, snapshot.rows, 'user_stats and users are from the same snapshot');

  const users = await copy.query<Array<{ username: string; password_hash: string }>>(
    'SELECT username, password_hash FROM users ORDER BY id',
  );
  t.true(users.every((user) => user.password_hash.length > 20), 'every row is whole');
  t.deepEqual(users.map((user) => user.username).filter((name) => !registered.includes(name)), [], 'every user in it was answered 201');

  // The restore of that dump into another database: every user in it can log in there.
  const restored = await database();
  const run = await runScript('restore', [file, '--yes'], { env: backupEnv(restored, dir) });
  t.is(run.code, 0, run.stderr);
  const restoredApi = await service(restored);
  for (const { username } of users) {
    const login = await restoredApi.request('/api/login', { body: { username, password: password(username) } });
    t.is(login.status, 200, `${username}: ${login.text}`);
  }
  t.is((await restoredApi.request('/api/status')).body.stats.total_users, users.length);
});

test('retention keeps the newest BACKUP_KEEP backups of this database and nothing else is touched', async (t) => {
  const db = await database();
  await runScript('migrate', [], { env: db.env });
  const dir = backupDir();
  const first = await backupOf(db, dir, { BACKUP_KEEP: '2' });
  // Older backups of this database, and files that are not ours to remove.
  const old = ['20200101T000000Z', '20210101T000000Z', '20220101T000000Z'].map((stamp) => `${db.name}-${stamp}.sql.gz`);
  // A partial file a killed run left a day ago goes; one a run may still be writing stays.
  const stalePartial = `.${db.name}-1577836800000-4242.partial`;
  const freshPartial = `.${db.name}-${Date.now()}-4243.partial`;
  const others = [`other_db-20200101T000000Z.sql.gz`, 'notes.txt', freshPartial];
  for (const name of [...old, ...others, stalePartial]) writeFileSync(path.join(dir, name), 'x');
  const dayAndMinuteAgo = (Date.now() - 24 * 3600 * 1000 - 60_000) / 1000;
  utimesSync(path.join(dir, stalePartial), dayAndMinuteAgo, dayAndMinuteAgo);
  const second = await backupOf(db, dir, { BACKUP_KEEP: '2' });
  t.deepEqual(backupFolder(dir).sort(), [path.basename(first), path.basename(second), ...others].sort());
});

test('a backup never replaces another: a name already taken gets the next number', async (t) => {
  const db = await database();
  await runScript('migrate', [], { env: db.env });
  const dir = backupDir();
  mkdirSync(dir, { recursive: true });
  // Every name the next half-minute could give is taken already.
  const now = Date.now();
  const taken = Array.from({ length: 30 }, (_, i) => `${db.name}-${utcStamp(new Date(now + (i - 2) * 1000))}.sql.gz`);
  for (const name of taken) writeFileSync(path.join(dir, name), 'placeholder');
  const file = await backupOf(db, dir, { BACKUP_KEEP: '100' });
  t.regex(path.basename(file), /T\d{6}Z-2\.sql\.gz$/);
  t.true(taken.every((name) => readFileSync(path.join(dir, name), 'utf8') === 'placeholder'), 'no backup was replaced');
});

test('a truncated, cut-short or foreign dump is refused and changes nothing', async (t) => {
  const db = await database();
  const api = await service(db);
  t.is((await api.request('/api/register', { body: { username: 'keeper', password: password('keeper') } })).status, 201);
  const dir = backupDir();
  const file = await backupOf(db, dir);
  await db.query("INSERT INTO users (username, password_hash) VALUES ('after_backup', 'x')");

  const whole = readFileSync(file);
  const sql = gunzipSync(whole).toString();
  const bad = {
    'truncated.sql.gz': whole.subarray(0, Math.floor(whole.length / 2)),
    'no-footer.sql.gz': gzipSync(sql.slice(0, sql.lastIndexOf('-- Dump completed'))),
    'foreign.sql.gz': gzipSync(sql.replace(/`users`/g, '`customers`')),
    'not-gzip.sql.gz': Buffer.from(sql),
    'own-database.sql.gz': gzipSync(sql.replace('\nCREATE TABLE `users` (', '\nUSE `elsewhere`;\nCREATE TABLE `users` (')),
    'no-header.sql.gz': gzipSync(`SELECT 1;\n${sql}`),
  };
  const expected = {
    'truncated.sql.gz': /not a complete gzip file/,
    'no-footer.sql.gz': /no "-- Dump completed" footer/,
    'foreign.sql.gz': /not a dump of this service's database \(no table users\)/,
    'not-gzip.sql.gz': /not a complete gzip file/,
    'own-database.sql.gz': /names its own database \(USE or CREATE DATABASE/,
    'no-header.sql.gz': /does not start like a mariadb-dump or mysqldump file \(first line: "SELECT 1;"\)/,
  };
  for (const [name, content] of Object.entries(bad)) {
    const badFile = path.join(dir, '..', name);
    writeFileSync(badFile, content);
    const run = await runScript('restore', [badFile, '--yes'], { env: backupEnv(db, dir) });
    t.is(run.code, 1, name);
    t.regex(run.stderr, /^Refusing to restore .*Nothing was changed\.$/m, name);
    t.regex(run.stderr, expected[name as keyof typeof expected], name);
  }
  const answeredNo = await runScript('restore', [file], { env: backupEnv(db, dir), input: 'no\n' });
  t.is(answeredNo.code, 1);
  t.regex(answeredNo.stdout, /Type "yes" to go on/);
  t.regex(answeredNo.stdout, /Restore cancelled; nothing was changed/);

  t.deepEqual(await userCount(db), { rows: 2, counted: 2 }, 'the row added after the backup is still there');
  t.is((await api.request('/api/login', { body: { username: 'keeper', password: password('keeper') } })).status, 200);
});

test('a backup with the database down exits non-zero, leaves no file and alerts', async (t) => {
  const webhook = await startWebhookReceiver();
  try {
    const dir = backupDir();
    const deadPort = await freePort();
    const run = await runBackup({
      env: {
        MYSQL_HOST: '127.0.0.1',
        MYSQL_PORT: String(deadPort),
        MYSQL_DATABASE: 'ra_backup_down',
        BACKUP_DIR: dir,
        LOG_DIR: path.join(dir, '..', 'logs'),
        ALERT_WEBHOOK_URL: `${webhook.url}/hook`,
      },
    });
    t.is(run.code, 1);
    t.regex(run.stderr, /Backup of 127\.0\.0\.1:\d+\/ra_backup_down failed: mariadb-dump exited with code \d+: .*connect/i);
    t.deepEqual(backupFolder(dir), [], 'no backup and no partial file');
    t.like(await readStatusFile(dir, 'ra_backup_down'), { failures: 1 }, 'the failed run is recorded for /metrics');
    t.is(webhook.received.length, 1);
    t.like(webhook.received[0], {
      level: 'CRITICAL',
      app: 'backup',
      event: 'backup_failed',
      service: 'resilient-api',
      details: { database: 'ra_backup_down', server: `127.0.0.1:${deadPort}`, dir },
    });
    t.regex(String(webhook.received[0]?.['message']), /ra_backup_down failed/);
    const log = readFileSync(path.join(dir, '..', 'logs', 'backend.log'), 'utf8');
    t.regex(log, / - backup - ERROR - Backup of 127\.0\.0\.1:\d+\/ra_backup_down failed: /);
  } finally {
    await webhook.close();
  }
});

test('a bad configuration stops the backup with exit 78 and one line in backend.log', async (t) => {
  const dir = backupDir();
  const logDir = path.join(dir, '..', 'logs');
  const run = await runBackup({ env: { BACKUP_DIR: dir, LOG_DIR: logDir, BACKUP_KEEP: 'none' } });
  t.is(run.code, 78);
  t.regex(run.stderr, / - backup - FATAL - Invalid configuration: BACKUP_KEEP must be an integer from 1 to 1000 \(got "none"\)/);
  t.regex(readFileSync(path.join(logDir, 'backend.log'), 'utf8'), / - backup - FATAL - Invalid configuration: BACKUP_KEEP/);
  t.throws(() => readdirSync(dir), undefined, 'no backup folder made');
});

test('a one-shot command only appends to backend.log, even past LOG_MAX_BYTES: rotating is not its job', async (t) => {
  const dir = backupDir();
  const logDir = path.join(dir, '..', 'logs');
  mkdirSync(logDir, { recursive: true });
  const earlier = `${'x'.repeat(2047)}\n`;
  writeFileSync(path.join(logDir, 'backend.log'), earlier);
  const deadPort = await freePort();
  const run = await runBackup({
    env: { MYSQL_PORT: String(deadPort), MYSQL_DATABASE: 'ra_backup_append', BACKUP_DIR: dir, LOG_DIR: logDir, LOG_MAX_BYTES: '1024' },
  });
  t.is(run.code, 1);
  t.deepEqual(readdirSync(logDir), ['backend.log'], 'no backend.log.1');
  const log = readFileSync(path.join(logDir, 'backend.log'), 'utf8');
  t.true(log.startsWith(earlier), 'the earlier lines are still there');
  t.regex(log, / - backup - ERROR - Backup of 127\.0\.0\.1:\d+\/ra_backup_append failed: /);
});

test('a dump tool that exits 0 with a cut-short dump publishes nothing', async (t) => {
  const fakePath = pathWithFakeDumpTool(['echo "-- MariaDB dump 10.19  Distrib 10.11.0-MariaDB"', 'echo "CREATE TABLE \\`users\\` ("', 'exit 0']);
  const dir = backupDir();
  const run = await runBackup({
    env: { PATH: fakePath, MYSQL_DATABASE: 'ra_backup_cut', BACKUP_DIR: dir, LOG_DIR: path.join(dir, '..', 'logs') },
  });
  t.is(run.code, 1);
  t.regex(run.stderr, /the dump written by mariadb-dump is not usable: it has no "-- Dump completed" footer/);
  t.deepEqual(backupFolder(dir), [], 'no backup and no partial file');
});

test('credentials reach the dump tool in a private option file, never on its command line', async (t) => {
  // A stand-in mariadb-dump records what it was given, as `ps` would show it.
  const record = path.join(tempDir('ra-record-'), 'record');
  const fakePath = pathWithFakeDumpTool([
    `echo "$@" > ${record}`,
    'file=${1#--defaults-extra-file=}',
    `stat -c %a "$file" >> ${record}`,
    `cat "$file" >> ${record}`,
    'echo "$file" >> ' + record,
    'exit 3',
  ]);
  const dir = backupDir();
  const run = await runBackup({
    env: {
      PATH: fakePath,
      MYSQL_PASSWORD: 'se"cr\\et-9f2c',
      MYSQL_DATABASE: 'ra_backup_creds',
      BACKUP_DIR: dir,
      LOG_DIR: path.join(dir, '..', 'logs'),
    },
  });
  t.is(run.code, 1, 'exit 3 of the tool is a failed backup');
  const [argv = '', mode, ...rest] = readFileSync(record, 'utf8').trim().split('\n');
  t.regex(argv, /^--defaults-extra-file=\S+ --single-transaction .*--routines --triggers .*ra_backup_creds$/);
  t.notRegex(argv, /9f2c|password/);
  t.is(mode, '600');
  t.true(rest.includes('password="se\\"cr\\\\et-9f2c"'), rest.join('\n'));
  t.throws(() => statSync(rest[rest.length - 1] ?? ''), undefined, 'the option file is removed afterwards');
  t.deepEqual(backupFolder(dir), []);
  t.notRegex(run.stdout + run.stderr + readFileSync(path.join(dir, '..', 'logs', 'backend.log'), 'utf8'), /9f2c/);
});
