// API_MAX_MEMORY_MB under a real PM2 daemon with 2 workers: a worker past the bound is replaced
// by a graceful reload of just that worker while a steady stream of keep-alive requests sees no
// failure; supervisor.log gives the reason; a bound below what any worker needs reloads each
// worker once, then says it will not reload it again (no reload loop).
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

const run = promisify(execFile);

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_memory');
  sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', RATE_LIMIT_PER_MINUTE: '0' });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

/** Keep-alive clients sending requests back to back until stopped; a failure is a network error or a 5xx. */
async function load(url: string, clients: number, until: () => boolean, result = { ok: 0, failures: [] as string[] }): Promise<{ ok: number; failures: string[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const one = (path: string): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(`${url}${path}`, { agent, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 500) result.failures.push(`${path}: ${res.statusCode}`);
          else result.ok++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (error) => {
        result.failures.push(`${path}: ${error.message}`);
        resolve();
      });
    });
  const client = async (index: number): Promise<void> => {
    for (let i = index; !until(); i++) {
      await one(i % 2 === 0 ? '/api/status' : '/livez');
      await sleep(5); // a steady stream, not a flood
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));
  agent.destroy();
  return result;
}

test.serial('a worker past API_MAX_MEMORY_MB is reloaded without a failed request, once per worker', async (t) => {
  const before = await sandbox.workers();
  t.is(before.length, 2);
  t.true(before.every((w) => (w.monit?.memory ?? 0) > 40 * 1024 * 1024), 'a fresh worker needs more than 40 MB');
  let done = false;
  const answered = { ok: 0, failures: [] as string[] };
  const traffic = load(sandbox.url, 4, () => done, answered);
  await waitFor('the traffic flowing', () => answered.ok >= 20, 10_000, 50);

  // The supervisor now runs with a bound below what any worker needs.
  await run(process.execPath, [PM2_BIN, 'restart', 'supervisor', '--update-env'], {
    cwd: ROOT,
    env: { ...sandbox.env, NODE_ENV: 'production', API_MAX_MEMORY_MB: '40' },
    timeout: 60_000,
  });

  const reloadLine = /WARN - api worker (\d+) \(pid (\d+)\) uses (\d+) MB \(RSS\), over API_MAX_MEMORY_MB=40; reloading it gracefully/g;
  const reloads = (): RegExpMatchArray[] => [...sandbox.supervisorLog().matchAll(reloadLine)];
  await waitFor('both workers reloaded for memory', () => new Set(reloads().map((m) => m[1])).size === 2, 90_000, 200);
  const holdLine = /api worker (\d+) \(pid \d+\) uses \d+ MB \(RSS\), over API_MAX_MEMORY_MB=40, but it was reloaded for memory \d+ s ago; not reloading it again within 10 minutes/g;
  await waitFor('both holds logged', () => new Set([...sandbox.supervisorLog().matchAll(holdLine)].map((m) => m[1])).size === 2, 60_000, 200);
  await waitFor('both replacements done', () => (sandbox.supervisorLog().match(/api worker \d+ replaced \(memory bound\)/g) ?? []).length === 2, 30_000, 200);

  // No loop: a reload that does not happen sends no event to wait for; four more ticks of the
  // checks (one a second), and still one reload per worker.
  await sleep(4000);
  done = true;
  const result = await traffic;
  t.is(reloads().length, 2, sandbox.supervisorLog());
  t.is([...sandbox.supervisorLog().matchAll(holdLine)].length, 2, 'each hold is said once');
  for (const match of reloads()) {
    const worker = before.find((w) => String(w.pm_id) === match[1]);
    t.is(String(worker?.pid), match[2] ?? '', 'the reload names the worker and its pid');
    t.true(Number(match[3]) > 40);
  }
  const after = await sandbox.workers();
  t.is(after.length, 2);
  for (const worker of after) {
    t.is(worker.pm2_env.status, 'online');
    t.false(before.some((w) => w.pid === worker.pid), 'every worker was replaced');
  }
  t.log(`${result.ok} requests answered, ${result.failures.length} failed`);
  t.true(result.ok > 100);
  t.deepEqual(result.failures, []);
  // A reload is not a crash: no crash-loop count, no restart line.
  t.notRegex(sandbox.supervisorLog(), /short run \d+ of/);
  t.notRegex(sandbox.supervisorLog(), /reload requested by an operator/, 'the supervisor knows its own reloads');

  const metrics = await sandbox.request('/metrics', { timeoutMs: 5000 });
  t.is(metrics.status, 200, metrics.text);
  t.regex(metrics.text, /resilient_api_reloads_total\{app="api",reason="memory"\} 2/);
  // A memory reload replaces the worker, so the restart alerts see it too.
  t.regex(metrics.text, /resilient_api_restarts_total\{app="api",reason="memory"\} 2/);
  t.log(sandbox.supervisorLog());
});
