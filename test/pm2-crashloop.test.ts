// The crash-loop limit under a real PM2 daemon: after 10 restarts of short runs the app stops and
// stays stopped, with one CRITICAL line and one webhook alert; a stable run resets the count;
// a webhook that fails or hangs cannot hurt the supervisor.
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

    // It stays stopped.
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

    // An operator starts it again: the supervisor forgets the loop and counts afresh, so the
    // still-crashing app runs its ten restarts once more and is stopped again.
    const logBefore = sandbox.supervisorLog().length;
    await sandbox.pm2('restart', 'api');
    await waitFor('the second CRITICAL line', () => (sandbox.supervisorLog().match(/^CRITICAL /gm) ?? []).length === 2, 60_000, 200);
    const second = sandbox.supervisorLog().slice(logBefore);
    t.regex(second, /api worker 0: restart requested by an operator/);
    t.is((second.match(/short run 1 of 10 allowed/g) ?? []).length, 1, 'the count started again at 1');
    await waitFor('the second alert', () => crashLoopAlerts().length === 2, 10_000);
  } finally {
    await sandbox.destroy();
    await webhook.close();
  }
});

test.serial('a stable run resets the restart count', async (t) => {
  // A run's uptime counts from its launch, start-up included (seconds on a loaded machine): the
  // window is well above that, so only the deliberate wait below makes a stable run.
  const sandbox = await sandboxWith({ CRASH_LOOP_MAX_RESTARTS: '3', CRASH_LOOP_WINDOW_MS: '10000' });
  try {
    await sandbox.startEcosystem('production');
    const crashAndComeBack = async (): Promise<void> => {
      const [before] = await sandbox.workers();
      await sandbox.request('/__fault/crash', { method: 'POST' });
      await waitFor('the worker back online', async () => {
        const [now] = await sandbox.workers();
        return now && now.pm2_env.restart_time > (before?.pm2_env.restart_time ?? 0) && now.pm2_env.status === 'online';
      }, 15_000, 100);
      await waitFor('/health 200', async () => (await sandbox.request('/health', { timeoutMs: 1000 })).status === 200, 15_000, 100);
    };
    // Three short runs: the most allowed.
    for (let i = 0; i < 3; i++) await crashAndComeBack();
    t.regex(sandbox.supervisorLog(), /short run 3 of 3 allowed/);
    // A run longer than the 10 s window resets the count...
    await sleep(10_500);
    await crashAndComeBack();
    t.regex(sandbox.supervisorLog(), /a stable run, crash-loop count reset/);
    // ...so three more short runs are allowed again, and the app is still up.
    for (let i = 0; i < 3; i++) await crashAndComeBack();
    const [worker] = await sandbox.workers();
    t.is(worker?.pm2_env.status, 'online');
    t.false(/^CRITICAL/m.test(sandbox.supervisorLog()));
  } finally {
    await sandbox.destroy();
  }
});

for (const behaviour of ['refuse', 'hang', 'fail'] as const) {
  test.serial(`the supervisor survives a webhook that ${behaviour === 'fail' ? 'answers 500' : `${behaviour}s`}`, async (t) => {
    const webhook = await startWebhookReceiver(behaviour);
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
      if (behaviour !== 'refuse') {
        t.is(webhook.received.filter((alert) => alert['event'] === 'crash_loop').length, 4, 'the alert was sent 4 times');
      }
    } finally {
      await sandbox.destroy();
      await webhook.close();
    }
  });
}
