// A worker whose event loop is stuck, under a real PM2 daemon with 2 workers: the supervisor
// pings each worker over PM2's IPC, kills the silent one with SIGKILL after
// STUCK_WORKER_TIMEOUT_MS, says why in supervisor.log, PM2 restarts it with a new pid, the
// other worker serves throughout, and the restart counts toward the crash loop.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_stuck');
  sandbox = await createPm2Sandbox({
    ...db.env,
    API_INSTANCES: '2',
    FAULT_INJECTION: '1',
    FAULT_INJECTION_IN_PRODUCTION: 'i-understand-this-lets-local-clients-crash-the-service',
    STUCK_WORKER_TIMEOUT_MS: '3000',
    RATE_LIMIT_PER_MINUTE: '0',
  });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

test.serial('a worker with a blocked event loop is killed and restarted; the other one serves meanwhile', async (t) => {
  const before = await sandbox.workers();
  t.is(before.length, 2);
  // Healthy workers answer every ping: nothing is killed while nothing is stuck. A kill that does
  // not happen sends no event to wait for: let more than the 3 s timeout pass.
  await sleep(4000);
  t.notRegex(sandbox.supervisorLog(), /has not answered/);

  const blocked = await sandbox.request('/__fault/block?ms=600000', { method: 'POST' });
  t.is(blocked.status, 202);
  const stuckPid = blocked.body.pid as number;
  const stuck = before.find((w) => w.pid === stuckPid);
  if (!stuck) throw new Error(`no worker with pid ${stuckPid}`);
  const blockedAt = Date.now();

  // /health all along: the stuck worker holds at most the one connection PM2 handed it.
  const outcomes: Array<{ ok: boolean; at: number }> = [];
  let polling = true;
  const poll = (async () => {
    while (polling) {
      const reply = await sandbox.request('/health', { timeoutMs: 2000 }).catch(() => undefined);
      outcomes.push({ ok: reply?.status === 200, at: Date.now() });
      await sleep(100); // the pace of the probes, as a monitor would send them
    }
  })();

  const killLine = new RegExp(
    `ERROR - api worker ${stuck.pm_id} \\(pid ${stuckPid}\\) has not answered for [\\d.]+ s \\(event loop stuck\\); killing it \\(SIGKILL\\) for PM2 to restart`,
  );
  await waitFor('the kill in supervisor.log', () => killLine.test(sandbox.supervisorLog()), 30_000, 100);
  const killedAfter = Date.now() - blockedAt;
  // The timeout counts from the last answer to a ping, and pings go every second: the last one
  // before the block may be up to a second older than the block.
  t.true(killedAfter >= 2000 && killedAfter < 20_000, `killed ${killedAfter} ms after the block`);

  const replaced = await waitFor('the worker back with a new pid', async () => {
    const now = (await sandbox.workers()).find((w) => w.pm_id === stuck.pm_id);
    return now && now.pm2_env.status === 'online' && now.pid !== stuckPid ? now : undefined;
  }, 30_000, 200);
  t.is(replaced.pm2_env.restart_time, stuck.pm2_env.restart_time + 1);
  const exitLine = new RegExp(
    `WARN - api worker ${stuck.pm_id} \\(pid ${stuckPid}\\) exited with SIGKILL from the supervisor \\(event loop stuck, no answer for [\\d.]+ s\\) ` +
      `after [\\d.]+ s uptime; restarting \\(restart #1, short run 1 of 10 allowed\\)`,
  );
  await waitFor('the stuck restart in supervisor.log', () => exitLine.test(sandbox.supervisorLog()), 10_000);
  // The other worker was never touched.
  const other = before.find((w) => w.pm_id !== stuck.pm_id);
  const otherNow = (await sandbox.workers()).find((w) => w.pm_id === other?.pm_id);
  t.is(otherNow?.pid, other?.pid);
  t.is(otherNow?.pm2_env.restart_time, other?.pm2_env.restart_time);

  // After: every request succeeds.
  await waitFor('/health 200', async () => (await sandbox.request('/health', { timeoutMs: 2000 })).status === 200, 15_000);
  const afterFrom = outcomes.length;
  await waitFor('ten probes after the restart', () => outcomes.length - afterFrom >= 10, 15_000, 50);
  polling = false;
  await poll;
  const during = outcomes.slice(0, afterFrom);
  const after = outcomes.slice(afterFrom);
  t.log(`during: ${during.filter((o) => o.ok).length} of ${during.length} /health answered 200; after: ${after.filter((o) => o.ok).length} of ${after.length}`);
  t.true(during.filter((o) => o.ok).length >= 5, 'the other worker served while one was stuck');
  t.true(during.filter((o) => !o.ok).length <= 2, 'only the connection(s) handed to the stuck worker failed');
  t.true(after.length > 5 && after.every((o) => o.ok), 'everything succeeds after the restart');
  t.notRegex(sandbox.supervisorLog(), /exited with signal SIGKILL/, 'the kill is not a mystery signal');

  const metrics = await sandbox.request('/metrics', { timeoutMs: 5000 });
  t.is(metrics.status, 200, metrics.text);
  t.regex(metrics.text, /resilient_api_exits_total\{app="api",reason="stuck"\} 1/);
  // What the alert ResilientApiWorkerStuck reads (monitoring/alerts.yml).
  t.regex(metrics.text, /resilient_api_restarts_total\{app="api",reason="stuck"\} 1/);
  t.log(sandbox.supervisorLog());
  t.log(await sandbox.pm2('ls'));
});
