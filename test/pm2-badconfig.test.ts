// A bad configuration under a real PM2 daemon, started the way operators do
// (`pm2 start ecosystem.config.js --env production`): the workers exit 78, the app ends stopped
// within seconds and is never restarted, supervisor.log has one CRITICAL line naming the bad
// variable, one alert goes out, nothing listens, and the supervisor probes no guessed address.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook';

const run = promisify(execFile);
const ECOSYSTEM = path.join(ROOT, 'ecosystem.config.js');

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase('ra_pm2_badconfig');
});
test.after.always(async () => {
  await db?.drop();
});

const criticalLines = (sandbox: Pm2Sandbox): string[] =>
  sandbox.supervisorLog().split('\n').filter((line) => line.startsWith('CRITICAL'));

/** Both api workers stopped or errored, neither online nor waiting for a restart. */
async function apiDown(sandbox: Pm2Sandbox): Promise<boolean> {
  const workers = await sandbox.workers();
  return workers.length === 2 && workers.every((w) => ['stopped', 'errored'].includes(w.pm2_env.status));
}

/** Listens on 127.0.0.1:8000 when it is free, to see whether anyone probes the guessed port. */
async function watchPort8000(): Promise<{ connections: () => number; close: () => Promise<void> } | undefined> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    socket.destroy();
  });
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(8000, '127.0.0.1', () => resolve(true));
  });
  if (!listening) return undefined;
  return { connections: () => count, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function expectStoppedAndReported(
  t: import('ava').ExecutionContext,
  sandbox: Pm2Sandbox,
  webhook: WebhookReceiver,
  variable: string,
): Promise<void> {
  const started = Date.now();
  await waitFor('the api stopped', () => apiDown(sandbox), 20_000, 100);
  t.log(`api stopped ${Date.now() - started} ms after pm2 start returned`);
  const restarts = (await sandbox.workers()).map((w) => w.pm2_env.restart_time);
  // A worker the supervisor stopped before it had failed on its own shows the stop's code instead.
  t.true((await sandbox.workers()).some((w) => w.pm2_env.exit_code === 78));

  // Well past the 3 s restart delay: still down, not one restart more. A restart that does not
  // happen sends no event to wait for, so the delay is let pass.
  await sleep(5000);
  const later = await sandbox.workers();
  t.true(later.every((w) => ['stopped', 'errored'].includes(w.pm2_env.status)), later.map((w) => w.pm2_env.status).join(', '));
  t.deepEqual(later.map((w) => w.pm2_env.restart_time), restarts, 'no restart');
  t.true(later.every((w) => !w.pid), 'no api process runs');
  const supervisor = (await sandbox.list()).find((p) => p.name === 'supervisor');
  t.is(supervisor?.pm2_env.status, 'online', 'the supervisor keeps running');

  // The apps one bad environment fails are gathered for a few seconds before the one line.
  const critical = await waitFor('the CRITICAL line', () => (criticalLines(sandbox).length > 0 ? criticalLines(sandbox) : undefined), 15_000, 100);
  t.is(critical.length, 1, sandbox.supervisorLog());
  // One line for every app the bad environment stopped (the backup job reads it too), api first.
  t.regex(critical[0] ?? '', new RegExp(`^CRITICAL .* - supervisor - api(, backup)? stopped: bad configuration \\(exit code 78\\).*${variable}`));
  t.regex(sandbox.backendLog(), new RegExp(`FATAL - Invalid configuration: .*${variable}`));

  await waitFor('the alert', () => webhook.received.some((a) => a['event'] === 'bad_configuration'), 10_000);
  // A second alert would come at once: a moment without one shows there is none.
  await sleep(500);
  const alerts = webhook.received.filter((a) => a['event'] === 'bad_configuration');
  t.is(alerts.length, 1);
  t.like(alerts[0], { level: 'CRITICAL', event: 'bad_configuration' });
  t.regex(String(alerts[0]?.['message']), new RegExp(variable));
  t.false(webhook.received.some((a) => a['event'] === 'crash_loop'));
}

test.serial('PORT=notaport: stopped at once, one CRITICAL line naming PORT, one alert, no probe of port 8000', async (t) => {
  const webhook = await startWebhookReceiver('accept');
  const port8000 = await watchPort8000();
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', PORT: 'notaport', ALERT_WEBHOOK_URL: webhook.url });
  try {
    await sandbox.pm2('start', ECOSYSTEM, '--env', 'production');
    await expectStoppedAndReported(t, sandbox, webhook, 'PORT must be an integer');
    const log = sandbox.supervisorLog();
    t.regex(log, /ERROR - Not probing \/health \(PORT must be an integer from 1 to 65535 \(got "notaport"\)\)/);
    t.notRegex(log, /probing http/);
    t.notRegex(log, /Service unhealthy/);
    if (port8000) t.is(port8000.connections(), 0, 'nobody probed 127.0.0.1:8000');
    else t.log('port 8000 is in use here: its probes not watched');
  } finally {
    t.log(await sandbox.pm2('ls').catch(() => ''));
    t.log(sandbox.supervisorLog());
    t.log(readFileSync(path.join(sandbox.home, 'pm2.log'), 'utf8').split('\n').filter((l) => /api|exit|Stopping|restart/.test(l)).slice(-40).join('\n'));
    await sandbox.destroy();
    await port8000?.close();
    await webhook.close();
  }
});

test.serial('JWT_SECRET=short at pm2 start: stopped at once, one CRITICAL line naming JWT_SECRET, one alert', async (t) => {
  const webhook = await startWebhookReceiver('accept');
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', JWT_SECRET: 'short', ALERT_WEBHOOK_URL: webhook.url });
  try {
    await sandbox.pm2('start', ECOSYSTEM, '--env', 'production');
    await expectStoppedAndReported(t, sandbox, webhook, 'JWT_SECRET must be at least 32 characters \\(got 5\\)');
    t.notRegex(sandbox.supervisorLog() + sandbox.backendLog(), /"short"/, 'the bad secret itself is never logged');
  } finally {
    await sandbox.destroy();
    await webhook.close();
  }
});

test.serial('a bad JWT_SECRET deployed to a running production api: the supervisor hears the workers and stops the app', async (t) => {
  const webhook = await startWebhookReceiver('accept');
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', ALERT_WEBHOOK_URL: webhook.url });
  try {
    await sandbox.startEcosystem('production', 2);
    // An operator restarts the api with a secret that is too short.
    await run(process.execPath, [PM2_BIN, 'restart', 'api', '--update-env'], {
      cwd: ROOT,
      env: { ...sandbox.env, NODE_ENV: 'production', JWT_SECRET: 'short' },
      timeout: 60_000,
    });
    await expectStoppedAndReported(t, sandbox, webhook, 'JWT_SECRET must be at least 32 characters');
    // The workers said so themselves over IPC: it is the api that is reported.
    t.regex(criticalLines(sandbox)[0] ?? '', /api stopped: bad configuration/);
    t.notRegex(sandbox.supervisorLog(), /short run \d+ of/);
    await t.throwsAsync(sandbox.request('/health', { timeoutMs: 1000 }));
    t.log(sandbox.supervisorLog());
  } finally {
    await sandbox.destroy();
    await webhook.close();
  }
});
