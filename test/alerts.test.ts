// The alert webhook: delivered as JSON, retried when it fails, and never able to hang or crash
// the sender, whatever the webhook does.
import test from 'ava';
import nock from 'nock';
import { AlertSender } from '../src/platform/alerts';
import { getLogger } from '../src/platform/logging/logger';
import { freePort } from './helpers/ports';
import { startWebhookReceiver } from './helpers/webhook';

const fast = { attempts: 3, timeoutMs: 300, minDelayMs: 10, maxDelayMs: 20 };
const alert = { level: 'CRITICAL', app: 'api', event: 'crash_loop', message: 'api stopped after 10 restarts' } as const;

test.afterEach.always(() => {
  nock.cleanAll();
  nock.enableNetConnect();
});

test.serial('an alert is POSTed as JSON with level, app, event, message, time and host', async (t) => {
  let received: Record<string, unknown> | undefined;
  const scope = nock('http://alerts.test')
    .post('/hook', (body: Record<string, unknown>) => {
      received = body;
      return true;
    })
    .matchHeader('content-type', 'application/json')
    .reply(204);
  const sender = new AlertSender('http://alerts.test/hook', getLogger('test'), fast);
  t.true(await sender.send(alert));
  t.true(scope.isDone());
  t.like(received, alert);
  t.regex(String(received?.['time']), /^\d{4}-\d\d-\d\dT/);
  t.is(typeof received?.['host'], 'string');
});

test.serial('a failing webhook is retried until it accepts', async (t) => {
  const scope = nock('http://alerts.test').post('/hook').reply(500).post('/hook').reply(502).post('/hook').reply(200);
  const sender = new AlertSender('http://alerts.test/hook', getLogger('test'), fast);
  t.true(await sender.send(alert));
  t.true(scope.isDone());
});

// A spare answer after the expected ones: an attempt too many would take it (and succeed).
test.serial('a webhook that keeps failing costs a bounded number of attempts and resolves false', async (t) => {
  const scope = nock('http://alerts.test').post('/hook').times(3).reply(500).post('/hook').reply(204);
  const sender = new AlertSender('http://alerts.test/hook', getLogger('test'), fast);
  t.false(await sender.send(alert));
  t.is(scope.pendingMocks().length, 1, 'exactly 3 attempts');
});

test.serial('a 4xx is not retried', async (t) => {
  const scope = nock('http://alerts.test').post('/hook').reply(400).post('/hook').reply(204);
  const sender = new AlertSender('http://alerts.test/hook', getLogger('test'), fast);
  t.false(await sender.send(alert));
  t.is(scope.pendingMocks().length, 1, 'asked once');
});

test.serial('a refused connection resolves false', async (t) => {
  nock.restore();
  try {
    const port = await freePort();
    const sender = new AlertSender(`http://127.0.0.1:${port}/hook`, getLogger('test'), fast);
    t.false(await sender.send(alert));
  } finally {
    nock.activate();
  }
});

test.serial('a webhook that never answers is abandoned after the timeout', async (t) => {
  nock.restore();
  const webhook = await startWebhookReceiver('hang');
  try {
    const sender = new AlertSender(`${webhook.url}/hook`, getLogger('test'), fast);
    const started = Date.now();
    t.false(await sender.send(alert));
    // 3 attempts of at most 300 ms each, and short pauses between them.
    t.true(Date.now() - started < 5000);
    t.is(webhook.received.length, 3);
  } finally {
    await webhook.close();
    nock.activate();
  }
});

test.serial('without a webhook URL nothing is sent', async (t) => {
  const sender = new AlertSender(undefined, getLogger('test'), fast);
  t.false(sender.configured);
  t.false(await sender.send(alert));
});
