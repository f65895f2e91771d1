// The overload guard: under an event-loop stall, a heap over its limit or a long queue for
// database connections, new requests get 503 with Retry-After at once, probes and status are
// still answered, the state shows in /api/status and /metrics, and it recovers by itself.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { sample } from './helpers/metrics';
import { startService } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;

test.before(async () => {
  db = await createTestDatabase('ra_overload');
});

test.after.always(async () => {
  await db?.drop();
});

test('an event-loop stall: requests that queued meanwhile get 503 with Retry-After, probes do not, and it recovers', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1', OVERLOAD_EVENT_LOOP_DELAY_MS: '300' } });
  try {
    t.is((await service.request('/api/me')).status, 401);
    t.is((await service.request('/__fault/block?ms=1500', { method: 'POST' })).status, 202);
    await sleep(200); // the stall has begun: what is sent now waits in the kernel
    const [me, login, livez, health] = await Promise.all([
      service.request('/api/me', { timeoutMs: 5000 }),
      service.request('/api/login', { body: { username: 'a', password: 'b' }, timeoutMs: 5000 }),
      service.request('/livez', { timeoutMs: 5000 }),
      service.request('/health', { timeoutMs: 5000 }),
    ]);
    for (const reply of [me, login]) {
      t.is(reply.status, 503, reply.text);
      t.is(reply.body.code, 'ServiceUnavailable');
      t.is(reply.body.message, 'Server is overloaded; try again shortly');
      t.is(reply.headers['retry-after'], '2');
      t.is(reply.headers['x-request-id'], reply.body.requestId);
    }
    t.is(livez.status, 200, 'liveness is never shed');
    t.is(health.status, 200, 'health is never shed');

    await waitFor('the guard to let requests through again', async () => (await service.request('/api/me')).status === 401, 5000, 100);
    const metrics = (await service.request('/metrics')).text;
    t.true((sample(metrics, 'resilient_api_overload_rejections_total{reason="event_loop_delay"}') ?? 0) >= 2, metrics);
    t.true((sample(metrics, 'resilient_api_http_requests_total{method="GET",route="/api/me",status_code="503"}') ?? 0) >= 1, 'a shed request counts under its route');
    t.is(sample(metrics, 'resilient_api_overloaded{worker="0"}'), 0);
    await waitFor('the transitions in the log', () => /Overload over after/.test(service.log()));
    t.regex(service.log(), / - overload - WARN - Overloaded \(event loop delay \d+ ms, over 300 ms\): answering 503 to new requests/);
    t.regex(service.log(), / - overload - INFO - Overload over after [\d.]+ s; \d+ requests were answered 503 meanwhile/);
    for (const shed of [me, login]) t.false(service.log().includes(shed.body.requestId), 'shed requests are not logged one by one');
  } finally {
    await service.stop();
  }
});

test('a heap over its limit: /api/status and /metrics show the overload, probes and the status page still answer', async (t) => {
  // With a 96 MB old space, 5% of V8's heap limit is passed by the process at rest: overloaded
  // from the first sample on.
  const service = await startService({
    env: { ...db.env, OVERLOAD_HEAP_PERCENT: '5', NODE_OPTIONS: '--max-old-space-size=96' },
  });
  try {
    await waitFor('the guard to trip', async () => (await service.request('/api/me')).status === 503, 3000, 50);
    const status = await service.request('/api/status');
    t.is(status.status, 503);
    t.is(status.body.status, 'degraded');
    t.deepEqual(status.body.services, { database: 'healthy', api: 'unhealthy' });
    t.regex(status.body.overload?.[0] ?? '', /^heap used [\d.]+% of its limit, over 5%$/);
    t.is(status.headers['retry-after'], '2');
    for (const path of ['/health', '/livez', '/readyz', '/status', '/status/summary']) {
      t.is((await service.request(path)).status, 200, path);
    }
    const metrics = await service.request('/metrics');
    t.is(metrics.status, 200);
    t.is(sample(metrics.text, 'resilient_api_overloaded{worker="0"}'), 1);
    t.true((sample(metrics.text, 'resilient_api_overload_rejections_total{reason="heap"}') ?? 0) >= 1);
    const register = await service.request('/api/register', { body: { username: 'shed', password: 'shed-password' } });
    t.is(register.status, 503);
    t.is((await db.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM users'))[0]?.n, 0, 'a shed request did nothing');
  } finally {
    await service.stop();
  }
});

test('a long queue for database connections sheds new requests until it drains', async (t) => {
  const service = await startService({
    env: { ...db.env, FAULT_INJECTION: '1', DB_POOL_SIZE: '1', OVERLOAD_DB_POOL_WAITING: '2' },
  });
  try {
    // One statement holds the only connection; five more wait for it, one after the other.
    const slow = Array.from({ length: 6 }, () => service.request('/__fault/slow-query?ms=400', { timeoutMs: 10_000 }));
    const shed = await waitFor('a request to be shed', async () => {
      const reply = await service.request('/api/me');
      return reply.status === 503 ? reply : undefined;
    }, 2000, 50);
    t.is(shed.body.code, 'ServiceUnavailable');
    const status = await service.request('/api/status');
    t.regex((status.body.overload ?? []).join(), /requests waiting for a database connection, over 2/);
    const replies = await Promise.all(slow);
    t.true(replies.every((r) => r.status === 200), 'requests already admitted are served');
    await waitFor('recovery', async () => (await service.request('/api/me')).status === 401, 3000, 50);
    t.true((sample((await service.request('/metrics')).text, 'resilient_api_overload_rejections_total{reason="db_pool_queue"}') ?? 0) >= 1);
  } finally {
    await service.stop();
  }
});
