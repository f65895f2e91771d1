// GET /metrics of one process: Prometheus text with the default metrics, requests counted and
// timed by method, route template and status, the event counters, and METRICS_ENABLED=0.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { changes, sample, scrapeMetrics } from './helpers/metrics';
import { startService, type Service } from './helpers/service';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_metrics');
  service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

const scrape = (): Promise<string> => scrapeMetrics(service);

test.serial('Prometheus text with the default process and Node.js metrics', async (t) => {
  const reply = await service.request('/metrics', { headers: { accept: 'application/json' } });
  t.is(reply.status, 200);
  t.regex(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.regex(reply.text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  t.is(sample(reply.text, 'resilient_api_overloaded{worker="0"}'), 0);
  t.is(sample(reply.text, 'resilient_api_db_up{worker="0"}'), 1);
  t.true((sample(reply.text, 'resilient_api_db_pool_connections{state="idle"}') ?? -1) >= 0);
  t.is(sample(reply.text, 'resilient_api_db_pool_waiting_requests'), 0);
});

test.serial('requests are counted by method, route template and status; unknown paths share one label', async (t) => {
  const before = await scrape();
  await service.request('/api/me');
  await service.request('/api/me', { headers: { authorization: 'Bearer nope' } });
  for (let i = 0; i < 25; i++) await service.request(`/probe-${i}/${'x'.repeat(i)}?token=${i}`);
  await service.request('/api/login', { method: 'GET' });
  const after = await scrape();
  const delta = changes(before, after);
  t.is(delta('resilient_api_http_requests_total{method="GET",route="/api/me",status_code="401"}'), 2);
  t.is(delta('resilient_api_http_requests_total{method="GET",route="unmatched",status_code="404"}'), 25);
  t.is(delta('resilient_api_http_requests_total{method="GET",route="unmatched",status_code="405"}'), 1);
  t.is(delta('resilient_api_http_request_duration_seconds_count{method="GET",route="/api/me",status_code="401"}'), 2);
  t.false(after.includes('probe-'), 'no path of an unknown route becomes a label');
});

test.serial('histogram buckets move with the time a request takes', async (t) => {
  const series = (le: string): string =>
    `resilient_api_http_request_duration_seconds_bucket{method="GET",route="/__fault/slow",status_code="200",le="${le}"}`;
  const before = await scrape();
  t.is((await service.request('/__fault/slow?ms=300')).status, 200);
  const after = await scrape();
  const delta = (le: string): number => changes(before, after)(series(le));
  t.is(delta('0.25'), 0, 'not under 250 ms');
  t.is(delta('0.5'), 1, 'under 500 ms');
  t.is(delta('+Inf'), 1);
  const sum = sample(after, 'resilient_api_http_request_duration_seconds_sum{method="GET",route="/__fault/slow",status_code="200"}') ?? 0;
  t.true(sum >= 0.3, `sum ${sum}`);
});

test.serial('logins by result, registrations and database statements are counted', async (t) => {
  const before = await scrape();
  const user = { username: 'metered', password: 'metered-password' };
  t.is((await service.request('/api/register', { body: user })).status, 201);
  t.is((await service.request('/api/register', { body: user })).status, 409);
  t.is((await service.request('/api/login', { body: user })).status, 200);
  t.is((await service.request('/api/login', { body: { ...user, password: 'wrong-password' } })).status, 401);
  t.is((await service.request('/api/login', { body: { ...user, username: 'nobody' } })).status, 401);
  const after = await scrape();
  const delta = changes(before, after);
  t.is(delta('resilient_api_registrations_total{result="created"}'), 1);
  t.is(delta('resilient_api_registrations_total{result="taken"}'), 1);
  t.is(delta('resilient_api_login_attempts_total{result="success"}'), 1);
  t.is(delta('resilient_api_login_attempts_total{result="wrong_password"}'), 1);
  t.is(delta('resilient_api_login_attempts_total{result="unknown_user"}'), 1);
  t.true(delta('resilient_api_db_query_duration_seconds_count{result="ok"}') >= 5);
  t.regex(after, /^# TYPE resilient_api_rate_limit_rejections_total counter$/m);
  t.regex(after, /^# TYPE resilient_api_db_retries_total counter$/m);
  t.regex(after, /^# TYPE resilient_api_db_failures_total counter$/m);
});

test('METRICS_ENABLED=0: no /metrics route, and the status summary says so', async (t) => {
  const plain = await startService({ env: { ...db.env, METRICS_ENABLED: '0' } });
  try {
    const reply = await plain.request('/metrics');
    t.is(reply.status, 404);
    t.is(reply.body.code, 'ResourceNotFound');
    const summary = await plain.request('/status/summary');
    t.is(summary.status, 200);
    t.is(summary.body.cluster, null);
    t.is((await plain.request('/health')).status, 200);
  } finally {
    await plain.stop();
  }
});
