// Migrations: recorded once, safe when every worker runs them at the same moment, and the
// database is created when it is missing.
import test from 'ava';
import mysql from 'mysql2/promise';
import { migrate, migrationStatus } from '../src/platform/db/migrate';
import { migrations } from '../src/platform/db/migrations';
import { getLogger } from '../src/platform/logging/logger';
import { databaseConfig, SHARED_DB, uniqueName } from './helpers/database';

const name = uniqueName('ra_migrate');
const config = databaseConfig(name);

test.after.always(async () => {
  const connection = await mysql.createConnection(SHARED_DB);
  await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await connection.end();
});

test.serial('eight concurrent runs on a missing database create it and apply each migration once', async (t) => {
  const results = await Promise.all(Array.from({ length: 8 }, () => migrate(config, getLogger('test'))));
  const applied = results.flat();
  t.deepEqual(applied.sort(), migrations.map((m) => m.name).sort(), 'every migration applied by exactly one run');
  t.is(results.filter((r) => r.length > 0).length, 1, 'one run did the work, the others found nothing left');

  const connection = await mysql.createConnection({ ...SHARED_DB, database: name });
  const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT name FROM schema_migrations ORDER BY name');
  t.deepEqual(rows.map((r) => r['name']), migrations.map((m) => m.name));
  const [tables] = await connection.query<mysql.RowDataPacket[]>('SHOW TABLES');
  t.true(tables.some((r) => Object.values(r).includes('users')));
  await connection.end();
});

test.serial('a second run applies nothing and the status lists everything as applied', async (t) => {
  t.deepEqual(await migrate(config, getLogger('test')), []);
  const status = await migrationStatus(config, getLogger('test'));
  t.deepEqual(status.pending, []);
  t.deepEqual(status.applied, migrations.map((m) => m.name));
});

test.serial('the user count kept by triggers matches the table', async (t) => {
  const connection = await mysql.createConnection({ ...SHARED_DB, database: name });
  await connection.query("INSERT INTO users (username, password_hash) VALUES ('u1', 'x'), ('u2', 'x'), ('u3', 'x')");
  await connection.query("DELETE FROM users WHERE username = 'u2'");
  const [[stats]] = await connection.query<mysql.RowDataPacket[]>('SELECT total_users FROM user_stats WHERE id = 1');
  const [[count]] = await connection.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM users');
  t.is(Number(stats?.['total_users']), Number(count?.['n']));
  t.is(Number(count?.['n']), 2);
  await connection.end();
});
