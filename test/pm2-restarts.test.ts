// Restarts under a real PM2 daemon: a crash comes back after the restart delay, a SIGKILL is a
// crash too (PM2 records it as exit code 0), and a deliberate clean exit stays down.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_restarts');
  sandbox = await createPm2Sandbox({ ...db.env, FAULT_INJECTION: '1', API_INSTANCES: '1' });
  await sandbox.startEcosystem('production');
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

async function worker() {
  const [only] = await sandbox.workers();
  if (!only) throw new Error('no api worker');
  return only;
}

test.serial('a crash outside a request is restarted after about 3 s and /health is 200 again', async (t) => {
  const before = await worker();
  const crashedAt = Date.now();
  t.is((await sandbox.request('/__fault/crash', { method: 'POST' })).status, 202);
  const after = await waitFor('the worker to be back', async () => {
    const now = await worker();
    return now.pm2_env.restart_time === before.pm2_env.restart_time + 1 && now.pm2_env.status === 'online' ? now : undefined;
  }, 20_000, 100);
  t.not(after.pid, before.pid);
  // The new run started the restart delay (3 s) after the crash's exit: no sooner, and not much
  // later (the crash's drain takes at most 3 s and the log flush 1 s).
  const delay = after.pm2_env.pm_uptime - crashedAt;
  t.true(delay >= 2900 && delay < 8000, `restarted ${delay} ms after the crash`);
  await waitFor('/health 200', async () => (await sandbox.request('/health')).status === 200, 20_000);
  await waitFor('the restart in supervisor.log', () => /api worker 0 \(pid \d+\) exited with code 1 after [\d.]+ s uptime; restarting \(restart #\d+, short run 1 of 10 allowed\)/.test(sandbox.supervisorLog()));
  t.regex(sandbox.supervisorLog(), /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - supervisor - INFO - api worker 0 is back online \(pid \d+\), restart #1/);
  t.regex(sandbox.backendLog(), /FATAL - Uncaught exception.*\n.*Injected crash outside a request/);
});

test.serial('a worker killed with SIGKILL is restarted, and the signal is logged', async (t) => {
  const before = await worker();
  process.kill(before.pid, 'SIGKILL');
  const after = await waitFor('the worker to be back', async () => {
    const now = await worker();
    return now.pm2_env.restart_time === before.pm2_env.restart_time + 1 && now.pm2_env.status === 'online' ? now : undefined;
  }, 20_000, 100);
  t.not(after.pid, before.pid);
  await waitFor('/health 200', async () => (await sandbox.request('/health')).status === 200, 20_000);
  await waitFor('the signal in supervisor.log', () => /exited with signal SIGKILL/.test(sandbox.supervisorLog()));
  t.regex(
    sandbox.supervisorLog(),
    new RegExp(`api worker 0 \\(pid ${before.pid}\\) exited with signal SIGKILL after [\\d.]+ s uptime; restarting`),
  );
});

test.serial('a clean exit (SIGTERM to the worker) drains, exits 0 and is not restarted', async (t) => {
  const before = await worker();
  process.kill(before.pid, 'SIGTERM');
  await waitFor('the clean exit in supervisor.log', () => /api worker 0 \(pid \d+\) exited cleanly \(code 0\)/.test(sandbox.supervisorLog()), 15_000);
  await waitFor('the worker stopped', async () => (await worker()).pm2_env.status === 'stopped', 15_000);
  // A restart that does not happen sends no event to wait for: let the 3 s restart delay pass, with
  // room to spare, and see that it stayed down.
  await sleep(4500);
  const after = await worker();
  t.is(after.pm2_env.status, 'stopped');
  t.is(after.pm2_env.restart_time, before.pm2_env.restart_time, 'no restart happened');
  t.regex(sandbox.backendLog(), /SIGTERM received; draining[\s\S]*Shutdown complete in \d+ ms; exiting with code 0/);
  await t.throwsAsync(sandbox.request('/health', { timeoutMs: 1000 }));
  t.notRegex(sandbox.supervisorLog(), /stop requested by an operator/, 'the supervisor knows its own stop');
});
