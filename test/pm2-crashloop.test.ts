// The crash-loop limit under a real PM2 daemon: after 10 restarts of short runs the app stops and
// stays stopped, with one CRITICAL line and one webhook alert; an operator start counts afresh; a
// webhook that hangs cannot hurt the supervisor. The decisions themselves (a stable run resets the
// count, what each exit counts as) are tested in-process in supervisor.test.ts, and the webhook's
// other failures (refused, 500) in alerts.test.ts.
import path from 'node:path';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';
import { startWebhookReceiver } from './helpers/webhook';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase('ra_pm2_loop');
});
test.after.always(async () => {
  await db?.drop();
});

/** A sandbox whose restarts come quickly, so ten of them take seconds, not half a minute. */
async function sandboxWith(env: Record<string, string>): Promise<Pm2Sandbox> {
  return createPm2Sandbox({ ...db.env, FAULT_INJECTION: '1', API_INSTANCES: '1', RESTART_DELAY_MS: '300', ...env });
}

test.serial('a crash loop stops after 10 restarts, stays stopped, logs one CRITICAL line and alerts once; an operator start counts afresh', async (t) => {
  const webhook = await startWebhookReceiver('accept');
  // Every run crashes 300 ms after start-up.
  const sandbox = await sandboxWith({ FAULT_CRASH_AFTER_MS: '300', ALERT_WEBHOOK_URL: webhook.url });
  try {
    await sandbox.pm2('start', path.join(ROOT, 'ecosystem.config.js'), '--env', 'production');
    await waitFor('the CRITICAL line', () => /^CRITICAL /m.test(sandbox.supervisorLog()), 60_000, 200);
    await waitFor('the app to be down', async () => {
      const workers = await sandbox.workers();
      return workers.every((w) => ['stopped', 'errored'].includes(w.pm2_env.status));
    }, 10_000);
    const [worker] = await sandbox.workers();
    const restartsAtStop = worker?.pm2_env.restart_time;
    t.is(restartsAtStop, 10, 'ten restarts, then stopped');

    // It stays stopped: a restart that does not happen sends no event to wait for, so ten restart
    // delays (300 ms) pass.
    await sleep(3000);
    const [later] = await sandbox.workers();
    t.true(['stopped', 'errored'].includes(later?.pm2_env.status ?? ''), later?.pm2_env.status);
    t.is(later?.pm2_env.restart_time, restartsAtStop);

    const critical = sandbox.supervisorLog().split('\n').filter((line) => line.startsWith('CRITICAL'));
    t.is(critical.length, 1);
    t.regex(critical[0] ?? '', /^CRITICAL \d{4}-\d\d-\d\d \d\d:\d\d:\d\d - supervisor - api stopped: crash loop after 10 restarts each shorter than 300 s/);
    t.regex(critical[0] ?? '', /Last errors: .*Injected crash 300 ms after start-up/);
    // Every restart was logged with its time, exit code, uptime and count.
    const restarts = sandbox.supervisorLog().match(/exited with code 1 after [\d.]+ s uptime; restarting \(restart #\d+, short run \d+ of 10 allowed\)/g) ?? [];
    t.is(restarts.length, 10);

    const crashLoopAlerts = () => webhook.received.filter((alert) => alert['event'] === 'crash_loop');
    await waitFor('the webhook alert', () => crashLoopAlerts().length > 0, 10_000);
    // A second alert would come at once: a moment without one shows there is none.
    await sleep(1000);
    t.is(crashLoopAlerts().length, 1, 'exactly one crash-loop alert');
    const [alert] = crashLoopAlerts();
    t.like(alert, { level: 'CRITICAL', app: 'api', event: 'crash_loop' });
    t.regex(String(alert?.['message']), /crash loop after 10 restarts/);
    t.truthy(alert?.['time']);
    t.truthy(alert?.['host']);
    // Anything else sent meanwhile is a health transition, one alert per transition.
    for (const other of webhook.received.filter((a) => a['event'] !== 'crash_loop')) {
      t.true(['health_unhealthy', 'health_recovered'].includes(String(other['event'])), String(other['event']));
    }

    // An operator starts it again: the supervisor forgets the loop and counts afresh (without that,
    // the next crash would be the 11th short run and stop the app at once). That the fresh count
    // runs to a second crash loop is tested in-process (supervisor.test.ts).
    const logBefore = sandbox.supervisorLog().length;
    await sandbox.pm2('restart', 'api');
    await waitFor('a restart counted afresh', () => /short run 2 of 10 allowed/.test(sandbox.supervisorLog().slice(logBefore)), 30_000, 200);
    const second = sandbox.supervisorLog().slice(logBefore);
    t.regex(second, /api worker 0: restart requested by an operator/);
    t.is((second.match(/short run 1 of 10 allowed/g) ?? []).length, 1, 'the count started again at 1');
    t.is((second.match(/^CRITICAL /gm) ?? []).length, 0);
  } finally {
    await sandbox.destroy();
    await webhook.close();
  }
});

// A webhook that never answers is the one that could hold the supervisor up.
test.serial('the supervisor survives a webhook that hangs', async (t) => {
  const webhook = await startWebhookReceiver('hang');
  const sandbox = await sandboxWith({
    CRASH_LOOP_MAX_RESTARTS: '1',
    FAULT_CRASH_AFTER_MS: '300',
    ALERT_WEBHOOK_URL: webhook.url,
    ALERT_TIMEOUT_MS: '1000',
  });
  try {
    await sandbox.pm2('start', path.join(ROOT, 'ecosystem.config.js'), '--env', 'production');
    await waitFor('the CRITICAL line', () => /^CRITICAL /m.test(sandbox.supervisorLog()), 30_000, 200);
    // Long enough for every retry of the alert to have failed or timed out.
    await waitFor('the undelivered alert to be logged', () => /Alert "crash_loop" for api could not be delivered/.test(sandbox.supervisorLog()), 40_000, 200);
    const supervisor = (await sandbox.list()).find((p) => p.name === 'supervisor');
    t.is(supervisor?.pm2_env.status, 'online');
    t.is(supervisor?.pm2_env.restart_time, 0, 'the supervisor never crashed');
    // Every one of the 4 attempts was made, and each failure logged, whatever the webhook did.
    const retries = sandbox.supervisorLog().match(/Alert webhook failed \(attempt [123] of 4\)/g) ?? [];
    t.true(retries.length >= 3, sandbox.supervisorLog());
    t.is(webhook.received.filter((alert) => alert['event'] === 'crash_loop').length, 4, 'the alert was sent 4 times');
  } finally {
    await sandbox.destroy();
    await webhook.close();
  }
});
