// Graceful shutdown of one process: in-flight requests finish, /health turns to
// "shutting_down", every response closes its connection, and the exit code is 0.
import http from 'node:http';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService } from './helpers/service';
import { sleep } from './helpers/wait';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase('ra_lifecycle');
});
test.after.always(async () => {
  await db?.drop();
});

/** GET over a given agent, so a request can reuse a keep-alive socket opened earlier. */
function get(port: number, path: string, agent: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: in-flight requests finish, /health says shutting_down, connections close, exit code 0`, async (t) => {
    const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
    // A monitor's keep-alive connection, idle when the signal comes.
    const monitor = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.is((await get(service.port, '/livez', monitor)).status, 200);
    const slow = service.request('/__fault/slow?ms=1500');
    await sleep(300);
    service.process.kill(signal);
    await sleep(50);

    const health = await get(service.port, '/health', monitor);
    t.is(health.status, 503);
    t.is(JSON.parse(health.body).status, 'shutting_down');
    t.is(health.headers['connection'], 'close', 'a draining worker closes each connection after the response');
    // Not accepting new connections any more.
    await t.throwsAsync(service.request('/livez', { timeoutMs: 1000 }));

    const finished = await slow;
    t.is(finished.status, 200, 'the request in flight was answered');
    t.is(finished.headers['connection'], 'close');
    const { code } = await service.exited;
    t.is(code, 0);
    t.regex(service.log(), new RegExp(`${signal} received; draining`));
    t.regex(service.log(), /Shutdown complete in \d+ ms; exiting with code 0/);
    monitor.destroy();
  });
}

test('while draining, other requests are served normally', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
  const client = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.is((await get(service.port, '/livez', client)).status, 200);
  const slow = service.request('/__fault/slow?ms=1000');
  await sleep(200);
  service.process.kill('SIGTERM');
  await sleep(50);
  const status = await get(service.port, '/api/status', client);
  t.is(status.status, 200);
  t.is(JSON.parse(status.body).status, 'ok');
  t.is(status.headers['connection'], 'close');
  t.is((await slow).status, 200);
  t.is((await service.exited).code, 0);
  client.destroy();
});

test('a drain that outlives SHUTDOWN_TIMEOUT_MS is cut short, and the process still exits 0', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1', SHUTDOWN_TIMEOUT_MS: '500' } });
  const slow = service.request('/__fault/slow?ms=5000', { timeoutMs: 8000 }).catch((error: unknown) => error);
  await sleep(200);
  const signalled = Date.now();
  service.process.kill('SIGTERM');
  const { code } = await service.exited;
  t.is(code, 0);
  t.true(Date.now() - signalled < 4000, 'did not wait for the 5 s request');
  t.true((await slow) instanceof Error, 'the request that outlived the bound was cut');
  t.regex(service.log(), /did not finish cleanly|Shutdown time is up/);
});

test('a stop signal during the drain after a crash still exits 1, so the crash is restarted', async (t) => {
  const service = await startService({ env: { ...db.env, FAULT_INJECTION: '1' } });
  // Keeps the crash's drain (at most 3 s) busy past the 2 s in which a signal counts as a repeat.
  const slow = service.request('/__fault/slow?ms=2900', { timeoutMs: 8000 }).catch((error: unknown) => error);
  await sleep(100);
  t.is((await service.request('/__fault/crash', { method: 'POST' })).status, 202);
  await sleep(2400);
  service.process.kill('SIGTERM');
  const { code } = await service.exited;
  t.is(code, 1);
  t.regex(service.log(), /Uncaught exception \(uncaughtException\); draining and exiting with code 1/);
  t.regex(service.log(), /SIGTERM received again while draining; exiting now/);
  await slow;
});
