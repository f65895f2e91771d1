// The database layer against a real MariaDB, with a fault-injecting TCP proxy in between:
// which failures are retried, how often, what a transaction leaves behind, and that no
// connection leaks.
import test from 'ava';
import type { DatabaseConfig } from '../src/platform/config';
import { Database } from '../src/platform/db/database';
import { DatabaseUnavailableError, isSafeToRetry } from '../src/platform/db/errors';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, SHARED_DB, type TestDatabase } from './helpers/database';
import { startFaultProxy, type FaultProxy } from './helpers/faultProxy';
import { sleep, waitFor } from './helpers/wait';

let testDb: TestDatabase;
let proxy: FaultProxy;

test.before(async () => {
  testDb = await createTestDatabase('ra_dblayer');
  await testDb.query('CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64) NOT NULL)');
  proxy = await startFaultProxy(SHARED_DB);
});

test.after.always(async () => {
  await proxy?.close();
  await testDb?.drop();
});

/** A Database through the proxy, with its retries and warnings recorded. */
function open(overrides: Partial<DatabaseConfig> = {}) {
  // Through the fault proxy, with tighter bounds than the shared test settings.
  const config: DatabaseConfig = {
    ...databaseConfig(testDb.name),
    host: '127.0.0.1',
    port: proxy.port,
    connectTimeoutMs: 1000,
    queryTimeoutMs: 2000,
    poolSize: 4,
    healthIntervalMs: 200,
    ...overrides,
  };
  const db = new Database(config, getLogger('test'));
  db.schemaReady = true;
  const retries: string[] = [];
  const failures: string[] = [];
  db.observer = { onRetry: (code) => retries.push(code), onFailure: (code) => failures.push(code) };
  return { db, retries, failures };
}

test.serial('a transient failure is retried and then succeeds', async (t) => {
  const { db, retries } = open();
  try {
    proxy.refuseNext(1);
    const rows = await db.select<{ one: number }>('SELECT 1 AS one');
    t.deepEqual(rows, [{ one: 1 }]);
    t.is(retries.length, 1);
    t.true(['ECONNRESET', 'PROTOCOL_CONNECTION_LOST'].includes(retries[0] ?? ''), retries[0]);
  } finally {
    proxy.refuseNext(0);
    await db.close();
  }
});

test.serial('attempts are bounded by DB_RETRIES, and then the caller gets "unavailable"', async (t) => {
  const { db, retries, failures } = open({ retries: 3 });
  try {
    proxy.mode = 'refuse';
    const before = proxy.accepted;
    const error = await t.throwsAsync(db.select('SELECT 1'));
    t.true(error instanceof DatabaseUnavailableError);
    t.is(retries.length, 2, 'three attempts: the first and two retries');
    t.is(failures.length, 1);
    // Each attempt opened one connection; the monitor may have tried too, but no more than that.
    t.true(proxy.accepted - before >= 3);
  } finally {
    proxy.mode = 'pass';
    await db.close();
  }
});

test.serial('a non-transient failure (syntax error, duplicate key) is not retried', async (t) => {
  const { db, retries } = open();
  try {
    const syntax = await t.throwsAsync(db.select('SELEC 1'));
    t.is((syntax as { code?: string }).code, 'ER_PARSE_ERROR');
    await testDb.query('CREATE TABLE uniq (k VARCHAR(8) PRIMARY KEY)');
    await db.modify('INSERT INTO uniq (k) VALUES (?)', ['a']);
    const duplicate = await t.throwsAsync(db.modify('INSERT INTO uniq (k) VALUES (?)', ['a']));
    t.is((duplicate as { code?: string }).code, 'ER_DUP_ENTRY');
    t.deepEqual(retries, []);
  } finally {
    await db.close();
  }
});

test.serial('a write cut off after it was sent is not repeated, so it is never applied twice', async (t) => {
  const { db, retries } = open();
  try {
    const write = db.modify('INSERT INTO items (v) SELECT ? FROM (SELECT SLEEP(0.4)) AS pause', ['once-only']);
    await sleep(150);
    proxy.dropAll();
    await t.throwsAsync(write);
    t.deepEqual(retries, [], 'the write was not retried');
    await sleep(600); // the server finishes the statement it had received
    const rows = await testDb.query<unknown[]>('SELECT id FROM items WHERE v = ?', ['once-only']);
    t.true(rows.length <= 1, `applied ${rows.length} times`);
  } finally {
    await db.close();
  }
});

test.serial('a read cut off mid-query is retried on a fresh connection', async (t) => {
  const { db, retries } = open();
  try {
    const read = db.select<{ v: number }>('SELECT SLEEP(0.3) AS v');
    await sleep(100);
    proxy.dropAll();
    t.deepEqual(await read, [{ v: 0 }]);
    t.is(retries.length, 1);
  } finally {
    await db.close();
  }
});

test.serial('a transaction commits as a whole or rolls back as a whole', async (t) => {
  const { db } = open();
  try {
    await db.transaction(async (tx) => {
      await tx.modify('INSERT INTO items (v) VALUES (?)', ['tx-commit-1']);
      await tx.modify('INSERT INTO items (v) VALUES (?)', ['tx-commit-2']);
    });
    const failure = await t.throwsAsync(
      db.transaction(async (tx) => {
        await tx.modify('INSERT INTO items (v) VALUES (?)', ['tx-rollback-1']);
        throw new Error('business rule says no');
      }),
    );
    t.is(failure?.message, 'business rule says no');
    const rows = await testDb.query<Array<{ v: string }>>("SELECT v FROM items WHERE v LIKE 'tx-%' ORDER BY v");
    t.deepEqual(rows.map((r) => r.v), ['tx-commit-1', 'tx-commit-2']);
  } finally {
    await db.close();
  }
});

test.serial('no connection leaks after many failures of every kind', async (t) => {
  const { db } = open({ poolSize: 3, queryTimeoutMs: 300, retries: 1 });
  try {
    for (let i = 0; i < 20; i++) {
      await t.throwsAsync(db.transaction(async (tx) => {
        await tx.modify('INSERT INTO items (v) VALUES (?)', [`leak-${i}`]);
        throw new Error('rollback please');
      }));
      await t.throwsAsync(db.select('SELECT * FROM no_such_table'));
      await t.throwsAsync(db.select('SELECT SLEEP(1)')); // query timeout: the connection is destroyed
    }
    const stats = db.poolStats();
    t.is(stats.inUse, 0, JSON.stringify(stats));
    t.true(stats.size <= 3);
    t.is(stats.waiting, 0);
    const leaked = await testDb.query<unknown[]>("SELECT id FROM items WHERE v LIKE 'leak-%'");
    t.is(leaked.length, 0, 'every transaction was rolled back');
    t.deepEqual(await db.select('SELECT 1 AS ok'), [{ ok: 1 }], 'the pool still works');
  } finally {
    await db.close();
  }
});

test.serial('waiting for a free connection is bounded by the query timeout', async (t) => {
  const { db } = open({ poolSize: 1, queryTimeoutMs: 300, retries: 1 });
  try {
    let hogDone = false;
    // Holds the only connection for a second without running a query.
    const hog = db.transaction(() => sleep(1000)).then(() => (hogDone = true));
    await sleep(50);
    const error = await t.throwsAsync(db.select('SELECT 1'));
    t.true(error instanceof DatabaseUnavailableError);
    t.is((error?.cause as { code?: string } | undefined)?.code, 'DB_POOL_TIMEOUT');
    t.false(hogDone, 'the wait ended before the connection came free');
    await hog;
    // The abandoned wait still gets the connection when it frees up, and hands it straight back.
    await waitFor('the connection back in the pool', () => db.poolStats().inUse === 0 && db.poolStats().waiting === 0, 2000);
    t.deepEqual(await db.select('SELECT 1 AS ok'), [{ ok: 1 }]);
  } finally {
    await db.close();
  }
});

test.serial('while the circuit is open, callers fail at once; it closes by itself when the database is back', async (t) => {
  const { db } = open({ healthIntervalMs: 100 });
  db.start();
  try {
    await waitFor('the monitor to see the database', () => db.monitor.state === 'up');
    proxy.mode = 'refuse';
    proxy.dropAll();
    await waitFor('the circuit to open', () => db.monitor.state === 'down', 3000);
    const started = Date.now();
    const error = await t.throwsAsync(db.select('SELECT 1'));
    t.true(error instanceof DatabaseUnavailableError);
    t.true(Date.now() - started < 200, 'failed fast, without waiting for a timeout');
    proxy.mode = 'pass';
    await waitFor('the circuit to close', () => db.monitor.state === 'up', 3000);
    t.deepEqual(await db.select('SELECT 1 AS ok'), [{ ok: 1 }]);
  } finally {
    proxy.mode = 'pass';
    await db.close();
  }
});

test('retry safety rules', (t) => {
  const err = (code: string) => Object.assign(new Error(code), { code });
  t.true(isSafeToRetry(err('ECONNREFUSED'), 'connect', false));
  t.true(isSafeToRetry(err('ER_LOCK_DEADLOCK'), 'execute', false));
  t.true(isSafeToRetry(err('ER_LOCK_WAIT_TIMEOUT'), 'commit', false));
  t.true(isSafeToRetry(err('PROTOCOL_CONNECTION_LOST'), 'execute', true));
  t.false(isSafeToRetry(err('PROTOCOL_CONNECTION_LOST'), 'execute', false), 'a write may have been applied');
  t.false(isSafeToRetry(err('PROTOCOL_CONNECTION_LOST'), 'commit', true), 'a commit may have happened');
  t.false(isSafeToRetry(err('ER_DUP_ENTRY'), 'connect', true));
  t.false(isSafeToRetry(err('ER_PARSE_ERROR'), 'execute', true));
});
