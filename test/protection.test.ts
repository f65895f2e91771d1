// The per-client rate limit and the daily failed-login limit per IP, on a real service and
// database. The service trusts X-Forwarded-For from loopback, so each test plays its own clients
// (documentation addresses) and none eats another's budget.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService, type Service } from './helpers/service';
import { awayFromMinuteEnd, waitFor } from './helpers/wait';

let db: TestDatabase;
let proxied: Service;
let direct: Service;
const LIMIT = 6;

test.before(async () => {
  db = await createTestDatabase('ra_protection');
  const common = { ...db.env, RATE_LIMIT_PER_MINUTE: String(LIMIT), LOGIN_MAX_FAILURES_PER_IP: '3' };
  [proxied, direct] = await Promise.all([
    startService({ env: { ...common, TRUSTED_PROXIES: '127.0.0.1' } }),
    startService({ env: common }),
  ]);
  const created = await proxied.request('/api/register', {
    body: { username: 'walter', password: 'walter-password' },
    headers: { 'x-forwarded-for': '192.0.2.200' },
  });
  if (created.status !== 201) throw new Error(created.text);
});

test.after.always(async () => {
  await Promise.all([proxied?.stop(), direct?.stop()]);
  await db?.drop();
});

const as = (ip: string) => ({ headers: { 'x-forwarded-for': ip } });

/** Requests the rate limit held and then admitted after a sync, from /metrics (loopback may read it). */
async function heldAdmitted(): Promise<number> {
  const metrics = await proxied.request('/metrics');
  const match = /^resilient_api_rate_limit_held_total\{outcome="admitted"\} (\d+)$/m.exec(metrics.text);
  if (match === null) throw new Error(`no held-requests counter in /metrics: ${metrics.status}`);
  return Number(match[1]);
}

test.serial('past the limit a client gets 429 with Retry-After and X-RateLimit headers; probes never do', async (t) => {
  await awayFromMinuteEnd();
  const client = as('203.0.113.10');
  const replies = [];
  for (let i = 0; i < LIMIT; i++) replies.push(await proxied.request('/api/status', client));
  t.deepEqual(replies.map((r) => r.status), Array(LIMIT).fill(200));
  // The headers appear once half of the budget is used (they are most of the limiter's cost).
  t.deepEqual(replies.map((r) => r.headers['x-ratelimit-remaining']), [undefined, undefined, undefined, '2', '1', '0']);
  t.is(replies[3]?.headers['x-ratelimit-limit'], String(LIMIT));
  const reset = Number(replies[3]?.headers['x-ratelimit-reset']);
  t.true(reset * 1000 > Date.now() && reset * 1000 <= Date.now() + 61_000, 'reset: epoch seconds of the minute end');

  const refused = await proxied.request('/api/status', client);
  t.is(refused.status, 429);
  t.deepEqual(Object.keys(refused.body).sort(), ['code', 'message', 'requestId']);
  t.is(refused.body.code, 'TooManyRequests');
  const retryAfter = Number(refused.headers['retry-after']);
  t.true(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${refused.headers['retry-after']}`);
  t.is(refused.headers['x-ratelimit-remaining'], '0');
  t.is(refused.headers['x-content-type-options'], 'nosniff', 'security headers on the 429 too');
  // Every route is limited, POSTs included; the body is never read: the connection closes,
  // though the client asked to keep it.
  const refusedPost = await proxied.request('/api/login', {
    headers: { ...client.headers, connection: 'keep-alive' },
    body: { username: 'walter', password: 'x' },
  });
  t.is(refusedPost.status, 429);
  t.is(refusedPost.headers['connection'], 'close');

  for (const probe of ['/health', '/livez', '/readyz', '/health/', '/health?verbose=1']) {
    const reply = await proxied.request(probe, client);
    t.is(reply.status, 200, probe);
    t.is(reply.headers['x-ratelimit-limit'], undefined, `${probe} is not counted`);
  }
  // Exempt from the limit (no 429), and this forwarded client is not a monitoring client (403).
  const metrics = await proxied.request('/metrics', client);
  t.is(metrics.status, 403, '/metrics is exempt from the limit, and only for METRICS_ALLOW');
  t.is(metrics.headers['x-ratelimit-limit'], undefined, '/metrics is not counted');
  // Another client is unaffected.
  t.is((await proxied.request('/api/status', as('203.0.113.11'))).status, 200);
  // Refusals are logged once per client and minute, not once per request.
  await waitFor('the refusal in the log', () => /client 203\.0\.113\.10 passed 6 requests per minute/.test(proxied.log()));
  t.is(proxied.log().match(/client 203\.0\.113\.10 passed/g)?.length, 1);
});

test.serial('a concurrent burst waits for the shared count instead of overrunning it; held requests are served whole', async (t) => {
  await awayFromMinuteEnd();
  const client = '203.0.113.50';
  // With a limit of 6 a worker runs ahead of the shared count by one request: the others of this
  // burst are held for a sync each and then served, their bodies read and their ids kept.
  const heldBefore = await heldAdmitted();
  const replies = await Promise.all(
    Array.from({ length: LIMIT - 1 }, (_, i) =>
      proxied.request('/api/register', {
        headers: { 'x-forwarded-for': client, 'x-request-id': `held-${i}` },
        body: { username: `held${i}`, password: 'held-password' },
        timeoutMs: 10_000,
      }),
    ),
  );
  t.deepEqual(replies.map((r) => r.status), Array(LIMIT - 1).fill(201));
  t.deepEqual(replies.map((r) => r.body.username), Array.from({ length: LIMIT - 1 }, (_, i) => `held${i}`));
  t.deepEqual(replies.map((r) => r.headers['x-request-id']), Array.from({ length: LIMIT - 1 }, (_, i) => `held-${i}`));
  // They really were held, and admitted after a sync (not at the hold deadline).
  t.true((await heldAdmitted()) - heldBefore >= 1, 'held requests admitted after a sync');
  // Exactly the limit in all: the sixth is served, the seventh refused.
  t.is((await proxied.request('/api/status', as(client))).status, 200);
  t.is((await proxied.request('/api/status', as(client))).status, 429);
});

test.serial('X-Forwarded-For from an untrusted peer is ignored: it cannot buy a fresh budget', async (t) => {
  await awayFromMinuteEnd();
  const statuses: number[] = [];
  for (let i = 0; i < LIMIT + 2; i++) {
    statuses.push((await direct.request('/api/status', as(`198.51.100.${i}`))).status);
  }
  t.deepEqual(statuses, [...Array(LIMIT).fill(200), 429, 429]);
});

test.serial('failed logins from one IP over any usernames block that IP; the right password too', async (t) => {
  await awayFromMinuteEnd();
  const client = as('203.0.113.30');
  for (const name of ['walter', 'nobody1', 'nobody2']) {
    const reply = await proxied.request('/api/login', { ...client, body: { username: name, password: 'wrong-password' } });
    t.is(reply.status, 401, name);
  }
  const blocked = await proxied.request('/api/login', { ...client, body: { username: 'walter', password: 'walter-password' } });
  t.is(blocked.status, 429);
  t.is(blocked.body.code, 'TooManyRequests');
  t.true(Number(blocked.headers['retry-after']) > 23 * 3600, 'blocked for the rest of the day');
  await waitFor('the WARN line', () =>
    / - auth - WARN - Login blocked for user: walter from 203\.0\.113\.30 \(too many failed attempts from this address today\)/.test(proxied.log()),
  );
  // Another address is not affected.
  const other = await proxied.request('/api/login', { ...as('203.0.113.31'), body: { username: 'walter', password: 'walter-password' } });
  t.is(other.status, 200);
});
