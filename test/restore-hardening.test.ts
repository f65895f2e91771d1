// A restore runs no client commands and touches only its own database: real dumps of a test
// database, tampered copies through the real `npm run restore`, and a second database that a
// tampered dump tries to reach. Nothing may change in either, and no command may run.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import test from 'ava';
import { findTool, safeClientOptions } from '../src/platform/backups/clientTools';
import { DumpScanner } from '../src/platform/backups/dumpScanner';
import { createTestDatabase, SHARED_DB, type TestDatabase } from './helpers/database';
import { runBackup, runScript } from './helpers/scripts';
import { tempDir } from './helpers/service';

const databases: TestDatabase[] = [];
let own: TestDatabase;
let other: TestDatabase;
let dir: string;
let dumpSql: string;

test.before(async () => {
  own = await createTestDatabase('ra_restore_own');
  other = await createTestDatabase('ra_restore_other');
  databases.push(own, other);
  const migrated = await runScript('migrate', [], { env: own.env });
  if (migrated.code !== 0) throw new Error(migrated.stderr);
  // Data that looks like what is refused: the check must read strings as strings.
  await own.query('INSERT INTO users (username, username_key, password_hash, email) VALUES (?, ?, ?, ?), (?, ?, ?, ?)', [
    'quoter',
    'quoter',
    'hash-1',
    "x'; \\! touch /tmp/never\n USE other; -- @x.y",
    'slasher',
    'slasher',
    'hash-2',
    '`a\\`.b */ /*!40101 SET NAMES gbk */ delimiter ;;',
  ]);
  await other.query('CREATE TABLE t (a INT NOT NULL)');
  await other.query('INSERT INTO t VALUES (1)');
  dir = path.join(tempDir('ra-restore-'), 'backups');
  const run = await runBackup({ env: { ...own.env, BACKUP_DIR: dir, LOG_DIR: path.join(dir, '..', 'logs') } });
  if (run.code !== 0) throw new Error(`backup failed: ${run.stderr}`);
  const file = /Backup written: (\S+)/.exec(run.stdout)?.[1];
  if (!file) throw new Error(run.stdout);
  dumpSql = gunzipSync(readFileSync(file)).toString('latin1');
  // A row written after the backup: a refused restore must leave it.
  await own.query("INSERT INTO users (username, username_key, password_hash) VALUES ('after', 'after', 'hash-3')");
});

test.after.always(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

const env = (db: TestDatabase): Record<string, string> => ({ ...db.env, BACKUP_DIR: dir, LOG_DIR: path.join(dir, '..', 'logs') });

/** The dump with `lines` put before the users table's data. */
function tampered(lines: string): string {
  const marker = '\nLOCK TABLES `users` WRITE;';
  if (!dumpSql.includes(marker)) throw new Error('the dump has no users data');
  return dumpSql.replace(marker, `\n${lines}${marker}`);
}

async function stateOf(): Promise<{ own: string[]; other: unknown[]; otherTables: string[] }> {
  const users = await own.query<Array<{ username: string }>>('SELECT username FROM users ORDER BY id');
  const rows = await other.query<Array<{ a: number }>>('SELECT a FROM t ORDER BY a');
  const tables = await other.query<Array<Record<string, string>>>('SHOW TABLES');
  return { own: users.map((u) => u.username), other: rows.map((r) => r.a), otherTables: tables.map((r) => Object.values(r)[0] ?? '') };
}

async function restoreText(sql: string, name: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const file = path.join(dir, '..', `${name}.sql.gz`);
  writeFileSync(file, gzipSync(Buffer.from(sql, 'latin1')));
  return runScript('restore', [file, '--yes'], { env: env(own) });
}

/** Every trick the check must refuse: name, the lines put into a genuine dump, the reason it gives. */
function tamperings(marker: string): Array<[string, string, RegExp]> {
  return [
    ['bang', `\\! touch ${marker}`, /client command \("\\!"\)/],
    ['bang-in-version-comment', `/*!40101 \\! touch ${marker} */;`, /client command \("\\!"\)/],
    ['system', `system touch ${marker}`, /client command \("system" at the start of a line\)/],
    ['source', `source /etc/passwd`, /client command \("source"/],
    ['tee', `tee ${marker}`, /client command \("tee"/],
    ['use', 'USE other;', /names its own database \(USE or CREATE DATABASE/],
    ['use-other-db', `USE \`${other.name}\`;`, /names its own database/],
    ['qualified-insert', `INSERT INTO \`${other.name}\`.\`t\` VALUES (42);`, /qualified name/],
    ['qualified-insert-spaced', `INSERT INTO ${other.name} /* */ . t VALUES (42);`, /qualified name/],
    ['qualified-create', `CREATE TABLE ${other.name}.t2 (a INT);`, /qualified name/],
    ['drop-database', `DROP DATABASE \`${other.name}\`;`, /names its own database .*"DROP DATABASE"/],
    ['create-database', 'CREATE DATABASE evil;', /names its own database/],
    ['grant', "GRANT ALL ON *.* TO 'x'@'%';", /"GRANT"/],
    ['select-into-outfile', `SELECT 1 INTO OUTFILE '${marker}';`, /statement a dump never writes \("SELECT"\)/],
    ['outfile-in-trigger', `CREATE TRIGGER x AFTER INSERT ON users FOR EACH ROW SELECT 1 INTO OUTFILE '${marker}';`, /"OUTFILE"/],
    ['delimiter-mid-line', `SET @x = 1; delimiter //`, /client command "delimiter"/],
    // Quoting tricks: each would make the client or the server read the rest differently.
    ['backslash-in-name', `INSERT INTO \`users\\\` VALUES (1);\n\\! touch ${marker}`, /backslash in a `name`/],
    ['no-backslash-escapes', "/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */;", /sets NO_BACKSLASH_ESCAPES/],
    ['ansi-quotes-by-variable', "SET @m = 'ANSI_QUOTES';\nSET SQL_MODE = @m;", /sets ANSI/],
    ['gbk', 'SET NAMES gbk;', /sets GBK/],
    ['concatenated-mode', "SET @m = 'NO_BACKSLASH' '_ESCAPES';", /concatenated or hex string/],
    ['control-char-comment', `--\x01 \\! touch ${marker}`, /control character/],
    ['optimizer-hint', `/*+ \\! touch ${marker} */`, /optimizer hint/],
    ['nested-comment', `/*!40101 SET @a = 1 /* x */ */;`, /comment inside a \/\*!…\*\/ comment/],
    ['trigger-writes-elsewhere', `CREATE TRIGGER x AFTER INSERT ON users FOR EACH ROW INSERT INTO new.t VALUES (NEW.id);`, /qualified name \(NEW\.T\)/],
  ];
}

/** Names of the tamperings also run through the real `npm run restore` (one of each kind). */
const THROUGH_THE_COMMAND = new Set(['bang', 'system', 'use-other-db', 'qualified-insert', 'no-backslash-escapes', 'control-char-comment']);

test('the check refuses every tampering, naming the reason and the line', (t) => {
  for (const [name, lines, reason] of tamperings('/tmp/never-run')) {
    const scanner = new DumpScanner();
    scanner.feed(tampered(lines));
    scanner.finish();
    t.regex(scanner.problem ?? 'accepted', reason, name);
    t.regex(scanner.problem ?? '', /\(line \d+\)/, `${name}: the line is named`);
  }
});

test.serial('a tampered dump is refused by npm run restore before anything runs: no command, no other database, nothing changed', async (t) => {
  const before = await stateOf();
  t.deepEqual(before.own, ['quoter', 'slasher', 'after']);
  const marker = path.join(tempDir('ra-restore-marker-'), 'ran');
  // Each kind of trick through the real command (a process each, which refuses before touching
  // anything); the check itself reads every trick in the test above.
  const cases = tamperings(marker).filter(([name]) => THROUGH_THE_COMMAND.has(name));
  t.is(cases.length, THROUGH_THE_COMMAND.size);
  for (let i = 0; i < cases.length; i += 3) {
    await Promise.all(
      cases.slice(i, i + 3).map(async ([name, lines, reason]) => {
        const run = await restoreText(tampered(lines), name);
        t.is(run.code, 1, `${name}: ${run.stdout} ${run.stderr}`);
        t.regex(run.stderr, /^Refusing to restore .*Nothing was changed\.$/m, name);
        t.regex(run.stderr, reason, name);
        t.regex(run.stderr, /\(line \d+\)/, `${name}: the line is named`);
      }),
    );
  }
  t.false(existsSync(marker), 'no client command ran');
  t.deepEqual(await stateOf(), before, 'nothing changed in either database');
});

test.serial('a genuine dump restores, strings that look like commands included, with the client in its safe mode', async (t) => {
  const copy = await createTestDatabase('ra_restore_copy');
  databases.push(copy);
  const file = path.join(dir, '..', 'genuine.sql.gz');
  writeFileSync(file, gzipSync(Buffer.from(dumpSql, 'latin1')));
  const run = await runScript('restore', [file, '--yes'], { env: env(copy) });
  t.is(run.code, 0, run.stderr);
  t.regex(run.stdout, /2 users/);
  const emails = await copy.query<Array<{ email: string }>>('SELECT email FROM users ORDER BY id');
  t.deepEqual(emails.map((row) => row.email), [
    "x'; \\! touch /tmp/never\n USE other; -- @x.y",
    '`a\\`.b */ /*!40101 SET NAMES gbk */ delimiter ;;',
  ]);
  // The trigger that sets NEW.username_key came back and works.
  await copy.query("INSERT INTO users (username, password_hash) VALUES ('Trig', 'h')");
  const [key] = await copy.query<Array<{ k: string }>>("SELECT CAST(username_key AS CHAR) AS k FROM users WHERE username = 'Trig'");
  t.is(key?.k, 'trig');
  const expected = safeClientOptions(findTool('client'));
  t.true(expected.includes('--binary-mode'), expected.join(' '));
  const log = readFileSync(path.join(dir, '..', 'logs', 'backend.log'), 'utf8');
  t.regex(log, new RegExp(`restore - INFO - Loading with ${findTool('client')} ${expected.join(' ')}`));
  t.deepEqual((await stateOf()).other, [1], 'the other database is untouched');
});

test('the client in its safe mode refuses a client command by itself', (t) => {
  const marker = path.join(tempDir('ra-restore-client-'), 'ran');
  const options = safeClientOptions(findTool('client'));
  const run = spawnSync(
    findTool('client'),
    ['--no-defaults', ...options, '-h', SHARED_DB.host, '-P', String(SHARED_DB.port), '-u', SHARED_DB.user, '--batch'],
    { input: `SELECT 1;\n\\! touch ${marker}\nSELECT 2;\n`, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', MYSQL_PWD: SHARED_DB.password } },
  );
  t.not(run.status, 0, run.stdout);
  t.false(existsSync(marker));
});

/** The check's verdict on `sql` read in pieces of `size` bytes, as the restore reads its gunzip stream. */
function verdict(sql: string, size: number): string {
  const scanner = new DumpScanner();
  for (let i = 0; i < sql.length; i += size) scanner.feed(sql.slice(i, i + size));
  scanner.finish();
  return scanner.problem ?? 'accepted';
}

test.serial('the check reads the same however the file is cut into pieces, and in time linear in its size', (t) => {
  const variants = [
    dumpSql,
    tampered('\\! touch /tmp/x'),
    tampered('INSERT INTO `other` . `t` VALUES (1);'),
    tampered("/*!40101 SET SQL_MODE='NO_BACKSLASH_ESCAPES' */;"),
    tampered('DELIMITER ;;\nSET @a = 1;;\nDELIMITER ;\nsystem ls'),
  ];
  for (const sql of variants) {
    const whole = verdict(sql, sql.length);
    for (const size of [1, 2, 7, 64, 4096]) t.is(verdict(sql, size), whole, `pieces of ${size}`);
  }
  t.is(verdict(dumpSql, 65536), 'accepted');

  // Many rows (strings with quotes and backslashes) in 64 KiB pieces: 4 times the rows, at most
  // about 4 times the time (10 allows for a busy machine; a quadratic scan would take 16).
  const rows = (n: number): string => {
    const row = "(1,'a\\'b\\\\c',0x61275C63,'e@x','$argon2id$v=19$m=19456,t=2,p=1$abc$def','2026-12-01 15:14:35.600')";
    const insert = `INSERT INTO \`users\` VALUES ${Array.from({ length: 1000 }, () => row).join(',')};\n`;
    return dumpSql.replace('\nLOCK TABLES `users` WRITE;', `\nLOCK TABLES \`users\` WRITE;\n${insert.repeat(n)}`);
  };
  const time = (sql: string): number => {
    let best = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      t.is(verdict(sql, 65536), 'accepted');
      best = Math.min(best, performance.now() - started);
    }
    return best;
  };
  const small = time(rows(5));
  const large = time(rows(20));
  t.true(large < small * 10, `${Math.round(small)} ms for 5,000 rows, ${Math.round(large)} ms for 20,000`);
});
