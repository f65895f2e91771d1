// Zero-downtime operations under a real PM2 daemon: `pm2 reload api` under continuous load fails
// no request, and `pm2 stop` lets an in-flight request finish.
import http from 'node:http';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_reload');
  // No rate limit: the load below goes past 600 requests a minute, and should reach the routes.
  sandbox = await createPm2Sandbox({ ...db.env, FAULT_INJECTION: '1', API_INSTANCES: '2', RATE_LIMIT_PER_MINUTE: '0' });
  await sandbox.startEcosystem('production', 2);
  const created = await sandbox.request('/api/register', { body: { username: 'loader', password: 'loader-password' } });
  if (created.status !== 201) throw new Error(created.text);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

interface LoadResult {
  ok: number;
  failed: number;
  failures: string[];
}

/** Keep-alive clients sending requests back to back until stopped; a failure is any network error or 5xx. */
function loadUntil(stop: Promise<void>, url: string, clients: number): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const result: LoadResult = { ok: 0, failed: 0, failures: [] };
  let stopped = false;
  void stop.then(() => (stopped = true));
  const paths = ['/api/status', '/livez', '/api/me', '/nope'];
  const one = (path: string): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(`${url}${path}`, { agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 500) {
            result.failed++;
            result.failures.push(`${path}: ${res.statusCode}`);
          } else result.ok++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => {
        result.failed++;
        result.failures.push(`${path}: ${error.message}`);
        resolve();
      });
    });
  const client = async (index: number): Promise<void> => {
    for (let i = index; !stopped; i++) await one(paths[i % paths.length] ?? '/livez');
  };
  return Promise.all(Array.from({ length: clients }, (_, i) => client(i))).then(() => {
    agent.destroy();
    return result;
  });
}

test.serial('pm2 reload api, twice, under continuous load: no request fails', async (t) => {
  const pidsBefore = (await sandbox.workers()).map((w) => w.pid);
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const load = loadUntil(done, sandbox.url, 8);
  await sleep(1000);
  await sandbox.pm2('reload', 'api');
  await sleep(1000);
  await sandbox.pm2('reload', 'api');
  await sleep(1000);
  finish();
  const result = await load;
  const pidsAfter = (await sandbox.workers()).map((w) => w.pid);
  t.is(pidsAfter.length, 2);
  t.false(pidsAfter.some((pid) => pidsBefore.includes(pid)), 'every worker was replaced');
  t.true(result.ok > 200, `${result.ok} requests succeeded`);
  t.is(result.failed, 0, result.failures.slice(0, 10).join('\n'));
  t.log(`${result.ok} requests during two reloads, ${result.failed} failed`);
  // A reload is a deliberate stop: no crash is counted, nothing is critical.
  t.notRegex(sandbox.supervisorLog(), /^CRITICAL|restarting \(restart/m);
});

test.serial('pm2 stop lets an in-flight request finish before the worker exits with code 0', async (t) => {
  const slow = sandbox.request('/__fault/slow?ms=2000', { timeoutMs: 10_000 });
  await sleep(300);
  await sandbox.pm2('stop', 'api');
  const reply = await slow;
  t.is(reply.status, 200);
  await waitFor('both workers stopped', async () => (await sandbox.workers()).every((w) => w.pm2_env.status === 'stopped'));
  t.regex(sandbox.backendLog(), /SIGINT received; draining[\s\S]*Shutdown complete in \d+ ms; exiting with code 0/);
});
