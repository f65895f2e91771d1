// The supervisor probes /health like a monitor and alerts once per transition: when the service
// turns unhealthy (here: its database dies) and when it recovers.
import test from 'ava';
import { createPrivateMariaDb, type PrivateMariaDb } from './helpers/mariadb';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook';

let mariadb: PrivateMariaDb;
let sandbox: Pm2Sandbox;
let webhook: WebhookReceiver;

test.before(async () => {
  mariadb = await createPrivateMariaDb();
  webhook = await startWebhookReceiver('accept');
  sandbox = await createPm2Sandbox({ ...mariadb.env, API_INSTANCES: '1', ALERT_WEBHOOK_URL: webhook.url, HEALTH_ALERT_AFTER: '2' });
  await sandbox.startEcosystem('production');
});

test.after.always(async () => {
  await sandbox?.destroy();
  await webhook?.close();
  await mariadb?.destroy();
});

test('one alert when /health turns unhealthy, one when it recovers', async (t) => {
  const events = () => webhook.received.map((alert) => String(alert['event']));
  await mariadb.kill();
  await waitFor('the unhealthy alert', () => events().includes('health_unhealthy'), 15_000, 100);
  // Unhealthy for several more probes: still one alert.
  await sleep(3000);
  t.deepEqual(events(), ['health_unhealthy']);
  t.like(webhook.received[0], { level: 'ERROR', app: 'api', event: 'health_unhealthy' });
  t.regex(String(webhook.received[0]?.['message']), /\/health answered 503/);

  await mariadb.start();
  await waitFor('the recovery alert', () => events().includes('health_recovered'), 15_000, 100);
  await sleep(2000);
  t.deepEqual(events(), ['health_unhealthy', 'health_recovered']);
  t.like(webhook.received[1], { level: 'INFO', app: 'api', event: 'health_recovered', message: 'Service healthy again' });
  t.regex(sandbox.supervisorLog(), / - supervisor - ERROR - Service unhealthy: \/health answered 503[\s\S]* - supervisor - INFO - Service healthy again/);
  // The api process itself never restarted: an outage of the database is not a crash.
  const [worker] = await sandbox.workers();
  t.is(worker?.pm2_env.restart_time, 0);
});
