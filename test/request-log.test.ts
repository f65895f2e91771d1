// The request log in backend.log: one line per request with method, route, status, duration,
// request id and client IP; probes only at DEBUG; slow requests and slow queries as warnings
// (without a value of the statement); REQUEST_LOG_SAMPLE=0 keeps only the slow ones.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

let db: TestDatabase;
let service: Service;

const SLOW = { SLOW_REQUEST_MS: '200', SLOW_QUERY_MS: '100', FAULT_INJECTION: '1' };

test.before(async () => {
  db = await createTestDatabase('ra_request_log');
  service = await startService({ env: { ...db.env, ...SLOW } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

const linesWith = (log: string, id: string): string[] => log.split('\n').filter((line) => line.includes(`id=${id}`));

test.serial('one INFO line per request: method, route template, status, duration, request id, client IP', async (t) => {
  const me = await service.request('/api/me', { headers: { 'x-request-id': 'req-log-1' } });
  t.is(me.status, 401);
  const unknown = await service.request('/secret/path?password=hunter22', { headers: { 'x-request-id': 'req-log-2' } });
  t.is(unknown.status, 404);
  const lines = await waitFor('the request lines', () => {
    const log = service.log();
    const found = [...linesWith(log, 'req-log-1'), ...linesWith(log, 'req-log-2')];
    return found.length === 2 ? found : undefined;
  });
  t.regex(lines[0] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - request - INFO - GET \/api\/me 401 \d+\.\d ms id=req-log-1 ip=127\.0\.0\.1$/);
  // An unmatched request shows its path, never its query.
  t.regex(lines[1] ?? '', / - request - INFO - GET \(unmatched\) \/secret\/path 404 \d+\.\d ms id=req-log-2 ip=127\.0\.0\.1$/);
  t.false(service.log().includes('hunter22'));
});

test.serial('successful probes and status polls are not written at INFO (a load balancer asks every second)', async (t) => {
  for (const path of ['/health', '/livez', '/readyz', '/metrics', '/api/status', '/status', '/status/summary']) {
    t.is((await service.request(path, { headers: { 'x-request-id': `probe-${path.slice(1).replace('/', '-')}` } })).status, 200);
  }
  await service.request('/api/me', { headers: { 'x-request-id': 'after-probes' } });
  await waitFor('a later line', () => linesWith(service.log(), 'after-probes').length === 1);
  t.false(/id=probe-/.test(service.log()));
});

test.serial('slow requests and slow queries are warnings; a statement\'s values never appear', async (t) => {
  t.is((await service.request('/__fault/slow?ms=300', { headers: { 'x-request-id': 'slow-request' } })).status, 200);
  t.is((await service.request('/__fault/slow-query?ms=250', { headers: { 'x-request-id': 'slow-query' } })).status, 200);
  await waitFor('both warnings', () => linesWith(service.log(), 'slow-query').length === 1 && linesWith(service.log(), 'slow-request').length === 1);
  const log = service.log();
  t.regex(linesWith(log, 'slow-request')[0] ?? '', / - request - WARN - Slow request: GET \/__fault\/slow 200 \d{3}\.\d ms id=slow-request ip=127\.0\.0\.1 \(SLOW_REQUEST_MS=200\)$/);
  t.regex(log, / - database - WARN - Slow query "SELECT SLEEP\(\?\) AS slept": succeeded after \d{3} ms \(SLOW_QUERY_MS=100\)/);
  t.false(/0\.25/.test(log), 'the statement\'s parameter is not logged');
});

test('REQUEST_LOG_SAMPLE=0 writes no request line but the slow ones', async (t) => {
  const quiet = await startService({ env: { ...db.env, ...SLOW, REQUEST_LOG_SAMPLE: '0' } });
  try {
    for (let i = 0; i < 5; i++) await quiet.request('/api/me', { headers: { 'x-request-id': `quiet-${i}` } });
    await quiet.request('/__fault/slow?ms=300', { headers: { 'x-request-id': 'quiet-slow' } });
    await waitFor('the slow warning', () => linesWith(quiet.log(), 'quiet-slow').length === 1);
    t.false(/ - request - INFO - /.test(quiet.log()));
    // Error answers keep their own line whatever the sample.
    t.regex(quiet.log(), / - http - WARN - Request quiet-0 GET \/api\/me answered 401/);
  } finally {
    await quiet.stop();
  }
});
