// Database metrics while the database is in trouble: the pool gauges follow the connections,
// retries and failures are counted by error code, and resilient_api_db_up follows the monitor. The outage is
// a TCP proxy that cuts and refuses connections; the shared MariaDB itself is never touched.
import test from 'ava';
import { createTestDatabase, SHARED_DB, type TestDatabase } from './helpers/database';
import { startFaultProxy, type FaultProxy } from './helpers/faultProxy';
import { sample, scrapeMetrics } from './helpers/metrics';
import { startService, type Service } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let proxy: FaultProxy;
let service: Service;

const user = { username: 'outage-meter', password: 'outage-password' };

test.before(async () => {
  db = await createTestDatabase('ra_metrics_outage');
  proxy = await startFaultProxy(SHARED_DB);
  service = await startService({
    env: { ...db.env, MYSQL_PORT: String(proxy.port), FAULT_INJECTION: '1', DB_POOL_SIZE: '2' },
  });
  await waitFor('a healthy service', async () => (await service.request('/health')).status === 200);
  const created = await service.request('/api/register', { body: user });
  if (created.status !== 201) throw new Error(`setup: ${created.text}`);
});

test.after.always(async () => {
  await service?.stop();
  await proxy?.close();
  await db?.drop();
});

const scrape = (): Promise<string> => scrapeMetrics(service);

/** Sum of every sample of a metric whose line starts with `prefix` (e.g. all codes of resilient_api_db_retries_total). */
function total(text: string, prefix: string): number {
  return text
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

test.serial('pool gauges show connections in use and requests waiting for one', async (t) => {
  // Two connections, four slow statements: two run, two wait (and the request limit's own write,
  // every 250 ms on the same pool, may wait with them).
  const slow = Array.from({ length: 4 }, () => service.request('/__fault/slow-query?ms=1500', { timeoutMs: 10_000 }));
  const busy = await waitFor('a full pool with a queue', async () => {
    const text = await scrape();
    return sample(text, 'resilient_api_db_pool_connections{state="in_use"}') === 2 && (sample(text, 'resilient_api_db_pool_waiting_requests') ?? 0) >= 2
      ? text
      : undefined;
  }, 5000, 50);
  t.true((sample(busy, 'resilient_api_db_pool_waiting_requests') ?? 0) <= 3, 'the two slow statements, and at most the limiter\'s write');
  t.is(sample(busy, 'resilient_api_db_pool_connections{state="idle"}'), 0);
  t.true((await Promise.all(slow)).every((reply) => reply.status === 200));
  // The shared request limit writes its counts every 250 ms on the same pool: wait for a quiet moment.
  const idle = await waitFor('the pool idle again', async () => {
    const text = await scrape();
    return sample(text, 'resilient_api_db_pool_connections{state="in_use"}') === 0 ? text : undefined;
  }, 3000, 50);
  t.is(sample(idle, 'resilient_api_db_pool_waiting_requests'), 0);
  t.true((sample(idle, 'resilient_api_db_pool_connections{state="idle"}') ?? 0) >= 1);
});

test.serial('an outage: retries and failures counted by error code, pool emptied, resilient_api_db_up 0, then all back', async (t) => {
  const before = await scrape();
  t.is(sample(before, 'resilient_api_db_up{worker="0"}'), 1);
  const movedBefore = total(before, 'resilient_api_db_retries_total{') + total(before, 'resilient_api_db_failures_total{');

  // Every connection cut, every new one refused.
  proxy.mode = 'refuse';
  proxy.dropAll();
  const replies = [];
  for (let i = 0; i < 3; i++) {
    replies.push(await service.request('/api/login', { body: user, timeoutMs: 5000 }));
    await sleep(50);
  }
  t.true(replies.some((reply) => reply.status === 503), replies.map((r) => r.status).join());

  const during = await waitFor('resilient_api_db_up to fall', async () => {
    const text = await scrape();
    return sample(text, 'resilient_api_db_up{worker="0"}') === 0 ? text : undefined;
  }, 3000, 50);
  const moved = total(during, 'resilient_api_db_retries_total{') + total(during, 'resilient_api_db_failures_total{') - movedBefore;
  t.true(moved >= 1, `retries and failures moved by ${moved}:\n${during.split('\n').filter((l) => /^resilient_api_db_(retries|failures)/.test(l)).join('\n')}`);
  t.regex(during, /^resilient_api_db_(retries|failures)_total\{code="(ECONNREFUSED|PROTOCOL_CONNECTION_LOST|ECONNRESET)"\} \d+$/m);
  t.is(sample(during, 'resilient_api_db_pool_connections{state="idle"}'), 0, 'cut connections leave the pool');
  t.true(
    (sample(during, 'resilient_api_http_requests_total{method="POST",route="/api/login",status_code="503"}') ?? 0) >= 1,
    'the 503s are counted under their route',
  );

  proxy.mode = 'pass';
  await waitFor('/health 200 again', async () => (await service.request('/health')).status === 200, 5000, 50);
  t.is((await service.request('/api/login', { body: user })).status, 200);
  // The pool refills as it is used; the request limit's sync may hold a connection at any moment.
  const after = await waitFor('an idle pooled connection again', async () => {
    const text = await scrape();
    return (sample(text, 'resilient_api_db_pool_connections{state="idle"}') ?? 0) >= 1 ? text : undefined;
  }, 3000, 50);
  t.is(sample(after, 'resilient_api_db_up{worker="0"}'), 1);
});
