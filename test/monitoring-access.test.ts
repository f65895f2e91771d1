// Monitoring is not an oracle and fault injection is not a door, through real HTTP on the
// compiled service: /metrics and /status/summary answer only allowed addresses (loopback by
// default) or the bearer token, a forwarded request never passes for loopback, a flood of scrapes
// shares the gathering of siblings, the status page still works for everyone, and the fault
// routes need a deliberate opt-in in production and a direct loopback client.
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import test from 'ava';
import { FAULT_INJECTION_PRODUCTION_OPT_IN } from '../src/platform/config';
import { launchBrowser } from './helpers/browser';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import type { Reply } from './helpers/http';
import { sample } from './helpers/metrics';
import { startService, type Service, tempDir } from './helpers/service';
import { sleep } from './helpers/wait';

const TOKEN = 'metrics-token-of-the-test-that-is-long-enough-1234';
let db: TestDatabase;
const services: Service[] = [];

test.before(async () => {
  db = await createTestDatabase('ra_monitoring');
});

test.after.always(async () => {
  await Promise.all(services.map((service) => service.stop('SIGKILL')));
  await db?.drop();
});

async function service(env: Record<string, string> = {}, waitForLive = true): Promise<Service> {
  const started = await startService({ env: { ...db.env, RATE_LIMIT_PER_MINUTE: '0', ...env }, waitFor: waitForLive ? 'live' : 'none' });
  services.push(started);
  return started;
}

function assertForbidden(t: import('ava').ExecutionContext, reply: Reply, what: string): void {
  t.is(reply.status, 403, `${what}: ${reply.text}`);
  t.deepEqual(Object.keys(reply.body ?? {}).sort(), ['code', 'message', 'requestId'], what);
  t.is(reply.body.code, 'Forbidden', what);
  t.regex(reply.body.message, /METRICS_ALLOW/, what);
  t.notRegex(reply.text, /resilient_api_http_requests_total|workers|pid/, `${what}: nothing of the metrics leaks`);
}

test.serial('loopback reads /metrics and /status/summary; a forwarded request from an untrusted loopback peer does not', async (t) => {
  const api = await service();
  const metrics = await api.request('/metrics');
  t.is(metrics.status, 200);
  t.regex(metrics.text, /resilient_api_login_attempts_total/);
  const summary = await api.request('/status/summary');
  t.is(summary.status, 200);
  t.is(summary.body.cluster.workers[0].pid, api.process.pid);

  // A reverse proxy on this host connects from loopback on behalf of anyone: not loopback.
  const forwardings: Array<Record<string, string>> = [{ 'x-forwarded-for': '127.0.0.1' }, { 'x-forwarded-for': '198.51.100.7' }, { forwarded: 'for=127.0.0.1' }];
  for (const headers of forwardings) {
    assertForbidden(t, await api.request('/metrics', { headers }), `/metrics with ${JSON.stringify(headers)}`);
    assertForbidden(t, await api.request('/status/summary', { headers }), `/status/summary with ${JSON.stringify(headers)}`);
  }
  // The login oracle is closed to them: the refused scrape says nothing about unknown users.
  t.is((await api.request('/api/login', { body: { username: 'nobody-here', password: 'whatever-pw' } })).status, 401);
  assertForbidden(t, await api.request('/metrics', { headers: { 'x-forwarded-for': '198.51.100.7' } }), 'after a login');
  // The status page itself is for everyone.
  const page = await api.request('/status', { headers: { 'x-forwarded-for': '198.51.100.7' } });
  t.is(page.status, 200);
  t.regex(String(page.headers['content-type']), /text\/html/);
});

test.serial('METRICS_ALLOW that leaves loopback out refuses it; METRICS_TOKEN lets any client in', async (t) => {
  const api = await service({ METRICS_ALLOW: '10.9.9.9', METRICS_TOKEN: TOKEN });
  assertForbidden(t, await api.request('/metrics'), '/metrics from loopback');
  assertForbidden(t, await api.request('/status/summary'), '/status/summary from loopback');
  for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, `Basic ${TOKEN}`]) {
    assertForbidden(t, await api.request('/metrics', { headers: { authorization } }), 'a wrong token');
  }
  const withToken = await api.request('/metrics', { headers: { authorization: `Bearer ${TOKEN}` } });
  t.is(withToken.status, 200);
  t.regex(withToken.text, /resilient_api_http_requests_total/);
  // The token works from anywhere, forwarded included.
  const forwarded = await api.request('/status/summary', { headers: { authorization: `Bearer ${TOKEN}`, 'x-forwarded-for': '198.51.100.7' } });
  t.is(forwarded.status, 200);
  t.true(Array.isArray(forwarded.body.cluster.workers));
  t.notRegex(api.log(), new RegExp(TOKEN), 'the token is never logged');
});

test.serial('behind a trusted proxy the forwarded client is what METRICS_ALLOW checks', async (t) => {
  const api = await service({ TRUSTED_PROXIES: '127.0.0.1', METRICS_ALLOW: '10.9.9.0/24' });
  t.is((await api.request('/metrics', { headers: { 'x-forwarded-for': '10.9.9.20' } })).status, 200);
  assertForbidden(t, await api.request('/metrics', { headers: { 'x-forwarded-for': '10.9.9.20, 198.51.100.7' } }), 'a client behind the allowed one');
  assertForbidden(t, await api.request('/metrics', { headers: { 'x-forwarded-for': 'not-an-address' } }), 'unreadable header');
  assertForbidden(t, await api.request('/metrics', { headers: { forwarded: 'for=10.9.9.20' } }), 'Forwarded alone');
  assertForbidden(t, await api.request('/metrics'), 'the proxy itself is not in METRICS_ALLOW');
});

test.serial('bad METRICS_ALLOW or a short METRICS_TOKEN stop start-up with exit 78, naming them', async (t) => {
  const bad = await service({ METRICS_ALLOW: 'prometheus.internal', METRICS_TOKEN: 'short' }, false);
  t.deepEqual(await bad.exited, { code: 78, signal: null });
  t.regex(bad.output(), /METRICS_ALLOW: "prometheus\.internal" is not an IP address or CIDR range/);
  t.regex(bad.output(), /METRICS_TOKEN must be at least 32 characters \(got 5\)/);
  t.notRegex(bad.output(), /short/);
});

test.serial('the status page works for a client that may not read the summary, with what the public endpoints give', async (t) => {
  const api = await service({ METRICS_ALLOW: '10.9.9.9' });
  const browser = await launchBrowser();
  try {
    const page = await browser.context.newPage();
    await page.goto(`${api.url}/status`);
    await page.waitForSelector('body[data-summary="restricted"]', { timeout: 10_000 });
    await page.waitForSelector('#database[data-state="up"]', { timeout: 10_000 });
    t.is(await page.getAttribute('#service', 'data-state'), 'up');
    t.is(await page.textContent('#workers .note'), 'monitoring clients only');
    t.regex((await page.textContent('#users .value')) ?? '', /^\d+$/, 'the user count comes from /api/status');
    t.is(await page.getAttribute('body', 'data-overall'), 'ok');
  } finally {
    await browser.close();
  }
});

/**
 * A sibling process's metrics socket, as the service finds them in METRICS_SOCKET_DIR: it counts
 * how often it is asked, and answers after `delayMs`.
 */
async function fakeSibling(dir: string): Promise<{ asked: () => number; setDelay(ms: number): void; close(): Promise<void> }> {
  let asked = 0;
  let delayMs = 600;
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics.json') {
      res.statusCode = 404;
      res.end();
      return;
    }
    asked++;
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ source: 'api-99', pid: process.pid, metrics: [] }));
    }, delayMs);
  });
  // The pid in the name is this test's: alive, so the service waits for its answer.
  const file = path.join(dir, `api-99-${process.pid}.sock`);
  await new Promise<void>((resolve) => server.listen(file, resolve));
  return {
    asked: () => asked,
    setDelay: (ms) => (delayMs = ms),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

test.serial('a flood of scrapes shares the gathering: a sibling is asked a bounded number of times', async (t) => {
  const dir = path.join(tempDir('ra-sk-'), 'sockets');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sibling = await fakeSibling(dir);
  try {
    // As under PM2: this process serves its own socket and gathers its siblings from the folder.
    const api = await service({ pm_id: '0', name: 'api', METRICS_SOCKET_DIR: dir });
    const first = await api.request('/metrics');
    t.is(sample(first.text, 'resilient_api_metrics_cluster_sources{state="ok"}'), 2, 'the service and the sibling');
    const askedBefore = sibling.asked();

    // 50 scrapes at once while the sibling takes 600 ms to answer: they share one gathering (two
    // or three if the machine is slow to deliver them all within 600 ms; without sharing, 50).
    const replies = await Promise.all(Array.from({ length: 50 }, () => api.request('/metrics', { timeoutMs: 10_000 })));
    t.true(replies.every((reply) => reply.status === 200));
    t.true(replies.every((reply) => sample(reply.text, 'resilient_api_metrics_cluster_sources{state="ok"}') === 2));
    const concurrentAsks = sibling.asked() - askedBefore;
    t.true(concurrentAsks >= 1 && concurrentAsks <= 3, `the sibling was asked ${concurrentAsks} times for 50 concurrent scrapes`);

    // 100 scrapes one after another, the sibling answering at once: past a burst of 10 in a
    // second, results up to a second old are reused.
    sibling.setDelay(0);
    await sleep(1100);
    const askedBeforeFlood = sibling.asked();
    const started = Date.now();
    for (let i = 0; i < 100; i++) t.is((await api.request('/metrics')).status, 200);
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const floodAsks = sibling.asked() - askedBeforeFlood;
    t.true(floodAsks <= 10 * (seconds + 1), `asked ${floodAsks} times in ${seconds} s`);
    t.true(floodAsks < 100, `asked ${floodAsks} times for 100 scrapes`);

    // An ordinary scraper, once in a while, gets fresh numbers.
    await sleep(1100);
    const before = sample((await api.request('/metrics')).text, 'resilient_api_http_requests_total{method="GET",route="/livez",status_code="200"}') ?? 0;
    t.is((await api.request('/livez')).status, 200);
    await sleep(1100);
    const after = sample((await api.request('/metrics')).text, 'resilient_api_http_requests_total{method="GET",route="/livez",status_code="200"}') ?? 0;
    t.is(after, before + 1);
  } finally {
    await sibling.close();
  }
});

// No backup before migrating: this database is shared by the tests of this file.
const PRODUCTION = { NODE_ENV: 'production', FAULT_INJECTION: '1', BACKUP_BEFORE_MIGRATE: '0' };

test.serial('production with FAULT_INJECTION=1 and no opt-in refuses to start (78), naming it', async (t) => {
  const refused = await service(PRODUCTION, false);
  t.deepEqual(await refused.exited, { code: 78, signal: null });
  t.regex(refused.output(), /FAULT_INJECTION=1 is refused in production/);
  t.regex(refused.output(), /FAULT_INJECTION_IN_PRODUCTION=i-understand-this-lets-local-clients-crash-the-service/);

  const wrong = await service({ ...PRODUCTION, FAULT_INJECTION_IN_PRODUCTION: 'yes' }, false);
  t.deepEqual(await wrong.exited, { code: 78, signal: null });
  t.regex(wrong.output(), /FAULT_INJECTION_IN_PRODUCTION must be exactly/);
});

test.serial('with the opt-in the fault routes answer direct loopback clients only; a forwarded crash is a 404 and changes nothing', async (t) => {
  const api = await service({ ...PRODUCTION, FAULT_INJECTION_IN_PRODUCTION: FAULT_INJECTION_PRODUCTION_OPT_IN });
  const unknown = await api.request('/__nothing/here', { method: 'POST' });
  t.is(unknown.status, 404);
  const forwardings: Array<Record<string, string>> = [{ 'x-forwarded-for': '198.51.100.7' }, { 'x-forwarded-for': '127.0.0.1' }, { forwarded: 'for=127.0.0.1' }];
  for (const headers of forwardings) {
    const crash = await api.request('/__fault/crash', { method: 'POST', headers });
    t.is(crash.status, 404, JSON.stringify(headers));
    t.is(crash.body.code, unknown.body.code);
    t.is(crash.body.message, '/__fault/crash does not exist', 'the same answer as any unknown path');
    t.is((await api.request('/__fault/slow?ms=1', { headers })).status, 404);
    // Not even a wrong method (a 405 would name the route's methods) tells them the route is there.
    const wrongMethod = await api.request('/__fault/crash', { headers });
    t.is(wrongMethod.status, 404);
    t.is(wrongMethod.body.message, '/__fault/crash does not exist');
  }
  t.is((await api.request('/__fault/crash')).status, 405, 'a direct loopback client sees the route as it is');
  await sleep(500);
  t.is((await api.request('/livez')).status, 200, 'still serving');
  t.is(api.process.exitCode, null, 'the process never exited');
  t.notRegex(api.log(), /Injected crash/);
  t.regex(api.log(), / - faults - WARN - POST \/__fault\/crash refused: the fault routes answer direct loopback clients only/);

  // A direct loopback client can use them: the drill still works.
  const slow = await api.request('/__fault/slow?ms=1');
  t.is(slow.status, 200);
  t.deepEqual(slow.body, { fault: 'slow', ms: 1 });
  t.is((await api.request('/__fault/exit?code=3', { method: 'POST' })).status, 202);
  t.deepEqual(await api.exited, { code: 3, signal: null });
});
