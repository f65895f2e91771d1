// Database outages against a private MariaDB (its own datadir and port): the service notices,
// answers 503 at once instead of hanging, stays alive, and recovers by itself.
import test from 'ava';
import { RETRY_AFTER_SECONDS } from '../src/api/http/errors';
import { createPrivateMariaDb, type PrivateMariaDb } from './helpers/mariadb';
import { startService, type Service } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

let mariadb: PrivateMariaDb;
let service: Service;

test.before(async () => {
  mariadb = await createPrivateMariaDb();
  // RATE_LIMIT_PER_MINUTE=0: the probe-storm test counts the health path's own queries, and the
  // rate limiter's batched sync (a few statements a second) would blur that count.
  service = await startService({ env: { ...mariadb.env, DB_QUERY_TIMEOUT_MS: '5000', RATE_LIMIT_PER_MINUTE: '0' } });
  await waitFor('a healthy service', async () => (await service.request('/health')).status === 200);
  const created = await service.request('/api/register', { body: { username: 'outage', password: 'outage-password' } });
  if (created.status !== 201) throw new Error(`setup: ${created.text}`);
});

test.after.always(async () => {
  await service?.stop();
  await mariadb?.destroy();
});

const loginBody = { username: 'outage', password: 'outage-password' };

test.serial('a storm of health probes costs the database about one ping per second', async (t) => {
  const mysql = await import('mysql2/promise');
  const admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: 'root' });
  const questions = async (): Promise<number> => {
    const [rows] = await admin.query<import('mysql2').RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Questions'");
    return Number(rows[0]?.['Value']);
  };
  try {
    const before = await questions();
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => service.request(i % 2 ? '/health' : '/api/status', { timeoutMs: 5000 })),
    );
    const seconds = (Date.now() - started) / 1000;
    t.true(replies.every((r) => r.status === 200));
    // Our own SHOW STATUS counts as one question, the monitor pings twice a second, and
    // /api/status reads the count at most once a second.
    const spent = (await questions()) - before - 1;
    t.true(spent <= 4 * Math.ceil(seconds + 1), `${spent} queries for 300 probes in ${seconds.toFixed(1)} s`);
  } finally {
    await admin.end();
  }
});

test.serial('database killed: 503 at once, the process lives, and it recovers without a restart', async (t) => {
  const pid = service.process.pid;
  await mariadb.kill();

  const health = await waitFor('/health to say 503', async () => {
    const reply = await service.request('/health', { timeoutMs: 1000 });
    return reply.status === 503 ? reply : undefined;
  }, 3000, 50);
  t.is(health.body.status, 'unhealthy');
  t.is(health.body.database, 'disconnected');
  t.is(health.headers['retry-after'], String(RETRY_AFTER_SECONDS));

  const status = await service.request('/api/status', { timeoutMs: 1000 });
  t.is(status.status, 503);
  t.is(status.body.status, 'degraded');
  t.deepEqual(status.body.services, { database: 'unhealthy', api: 'healthy' });

  const login = await service.request('/api/login', { body: loginBody, timeoutMs: 1000 });
  t.is(login.status, 503);
  t.is(login.body.code, 'ServiceUnavailable');
  t.is(login.headers['retry-after'], String(RETRY_AFTER_SECONDS));
  t.is((await service.request('/livez')).status, 200, 'liveness does not depend on the database');
  t.is((await service.request('/readyz')).status, 503);

  await mariadb.start();
  await waitFor('/health to say 200 again', async () => (await service.request('/health')).status === 200, 5000, 50);
  const again = await service.request('/api/login', { body: loginBody });
  t.is(again.status, 200, again.text);
  t.is((await service.request('/readyz')).status, 200);
  t.is(service.process.pid, pid);
  t.is(service.process.exitCode, null, 'no restart');
  t.regex(service.log(), / - database - ERROR - Database unreachable/);
  t.regex(service.log(), / - database - INFO - Database connection is healthy/);
});

test.serial('database frozen: /health answers 503 within a second, then every request needing it is 503 at once', async (t) => {
  await waitFor('a healthy service', async () => (await service.request('/health')).status === 200);
  mariadb.freeze();
  try {
    // /health never waits for a hung database longer than its budget.
    const first = await service.request('/health', { timeoutMs: 1500 });
    t.true(first.ms < 1500);
    await waitFor('/health to say 503', async () => (await service.request('/health', { timeoutMs: 1500 })).status === 503, 3000, 50);

    // Within 2 s of the freeze the breaker is open: no request waits out the 5 s query timeout.
    await sleep(500);
    const replies = await Promise.all([
      service.request('/api/login', { body: loginBody, timeoutMs: 2000 }),
      service.request('/api/register', { body: { username: 'frozen1', password: 'frozen-password' }, timeoutMs: 2000 }),
      service.request('/api/status', { timeoutMs: 2000 }),
    ]);
    t.deepEqual(replies.map((r) => r.status), [503, 503, 503]);
    for (const reply of replies) t.true(reply.ms < 1000, `answered in ${Math.round(reply.ms)} ms`);
  } finally {
    mariadb.thaw();
  }
  await waitFor('/health to say 200 after the thaw', async () => (await service.request('/health')).status === 200, 5000, 50);
  t.is((await service.request('/api/login', { body: loginBody })).status, 200);
  t.is(service.process.exitCode, null);
});

test.serial('a request in flight when the database freezes is answered 503, not left hanging', async (t) => {
  await waitFor('a healthy service', async () => (await service.request('/health')).status === 200);
  const pending = service.request('/api/login', { body: loginBody, timeoutMs: 8000 });
  mariadb.freeze();
  try {
    const reply = await pending;
    t.true([200, 503].includes(reply.status), `${reply.status}`);
    t.true(reply.ms < 4000, `answered in ${Math.round(reply.ms)} ms, before the 5 s query timeout`);
  } finally {
    mariadb.thaw();
  }
  await waitFor('recovery', async () => (await service.request('/health')).status === 200, 5000, 50);
});

test.serial('the service starts while the database is down, answers 503, and migrates once it is up', async (t) => {
  await mariadb.stop();
  const late = await startService({ env: { ...mariadb.env, MYSQL_DATABASE: 'created_later' } });
  try {
    t.is((await late.request('/health')).status, 503);
    t.is((await late.request('/api/register', { body: { username: 'early', password: 'early-password' } })).status, 503);
    await mariadb.start();
    await waitFor('the late service to be healthy', async () => (await late.request('/readyz')).status === 200, 8000, 100);
    const created = await late.request('/api/register', { body: { username: 'late', password: 'late-password' } });
    t.is(created.status, 201, created.text);
    t.regex(late.log(), /Cannot migrate yet, the database is unreachable/);
    t.regex(late.log(), /Migration applied: 001-create-users/);
  } finally {
    await late.stop();
  }
});
