// Brute force and request floods against 2 PM2 workers over HTTPS, one fresh connection per
// request so PM2's round robin spreads them over both workers: the limits hold for the cluster,
// not per worker. Also shows the supervisor's health probe working over HTTPS.
import test from 'ava';
import { SignJWT } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { changes, sample, scrapeMetrics } from './helpers/metrics';
import { createTestCertificate, type TestCertificate } from './helpers/tls';
import { awayFromMinuteEnd, sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let certificate: TestCertificate;
let sandbox: Pm2Sandbox;
const MAX_FAILURES = 4;
const MAX_FAILURES_PER_IP = 15;
const BLOCK_SECONDS = 3;
const RATE_LIMIT = 20;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_brute');
  certificate = createTestCertificate();
  sandbox = await createPm2Sandbox({
    ...db.env,
    ...certificate.env,
    API_INSTANCES: '2',
    LOGIN_MAX_FAILURES: String(MAX_FAILURES),
    LOGIN_MAX_FAILURES_PER_IP: String(MAX_FAILURES_PER_IP),
    LOGIN_BLOCK_SECONDS: String(BLOCK_SECONDS),
    RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
    // Each test plays its own client address, so no test eats another's budget.
    TRUSTED_PROXIES: '127.0.0.1',
  });
  await sandbox.startEcosystem('production', 2);
  for (const username of ['victim', 'target']) {
    const created = await sandbox.request('/api/register', {
      body: { username, password: `${username}-password` },
      headers: { 'x-forwarded-for': '192.0.2.1' },
    });
    if (created.status !== 201) throw new Error(created.text);
  }
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
  certificate?.remove();
});

const login = (username: string, password: string, ip: string) =>
  sandbox.request('/api/login', { body: { username, password }, headers: { 'x-forwarded-for': ip } });

test.serial('consecutive failures block the pair across workers; the right password waits out the block', async (t) => {
  t.true(sandbox.url.startsWith('https://'));
  const ip = '203.0.113.40';
  // A success resets the count: 3 failures, a success, 3 failures are all just 401s.
  for (const password of ['wrong-1', 'wrong-2', 'wrong-3', 'victim-password', 'wrong-4', 'wrong-5', 'wrong-6']) {
    t.is((await login('victim', password, ip)).status, password === 'victim-password' ? 200 : 401, password);
  }
  // The 4th consecutive failure is still answered; then the pair is blocked, the right password included,
  // on whichever worker the attempt lands.
  t.is((await login('victim', 'wrong-7', ip)).status, 401);
  const blocked = await login('victim', 'victim-password', ip);
  t.is(blocked.status, 429);
  t.is(blocked.body.code, 'TooManyRequests');
  t.regex(String(blocked.headers['x-request-id']), /./);
  const retryAfter = Number(blocked.headers['retry-after']);
  t.true(retryAfter >= 1 && retryAfter <= BLOCK_SECONDS, `Retry-After ${blocked.headers['retry-after']}`);
  for (let i = 0; i < 3; i++) t.is((await login('VICTIM', 'victim-password', ip)).status, 429, 'any letter case, any worker');
  // Only this pair is blocked: the same user from elsewhere, and another user from here, get in.
  t.is((await login('victim', 'victim-password', '203.0.113.41')).status, 200);
  t.is((await login('target', 'target-password', ip)).status, 200);
  await waitFor('the WARN line with username and IP', () =>
    / - auth - WARN - Login blocked for user: (victim|VICTIM) from 203\.0\.113\.40 \(too many failed attempts for this user from this address\); retry after \d+ s/.test(sandbox.backendLog()),
  );

  await sleep(BLOCK_SECONDS * 1000 + 300);
  const after = await login('victim', 'victim-password', ip);
  t.is(after.status, 200, after.text);
  t.is(typeof after.body.token, 'string');
});

test.serial('parallel attempts through both workers cannot try more passwords than the limit', async (t) => {
  // Over several spellings of the name: they are one account, and one counter.
  const spellings = ['target', 'TARGET', 'ｔａｒｇｅｔ', 'target '];
  const replies = await Promise.all(
    Array.from({ length: 12 }, (_, i) => login(spellings[i % spellings.length] as string, `wrong-${i}`, '203.0.113.42')),
  );
  const statuses = replies.map((r) => r.status).sort();
  t.deepEqual(statuses, [...Array(MAX_FAILURES).fill(401), ...Array(12 - MAX_FAILURES).fill(429)]);
});

test.serial('a parallel burst from one address over many names, through both workers, gets the per-address limit judged', async (t) => {
  const burst = 2 * MAX_FAILURES_PER_IP;
  const replies = await Promise.all(Array.from({ length: burst }, (_, i) => login(`nobody-${i}`, 'wrong-password', '203.0.113.44')));
  const statuses = replies.map((r) => r.status).sort();
  t.deepEqual(statuses, [...Array(MAX_FAILURES_PER_IP).fill(401), ...Array(burst - MAX_FAILURES_PER_IP).fill(429)]);
  t.is((await login('target', 'target-password', '203.0.113.44')).status, 429, 'the right password too');
});

test.serial('the request rate limit counts both workers together', async (t) => {
  await awayFromMinuteEnd();
  const statuses: number[] = [];
  for (let i = 0; i < RATE_LIMIT * 2; i++) {
    statuses.push((await sandbox.request('/api/status', { headers: { 'x-forwarded-for': '203.0.113.43' } })).status);
  }
  const admitted = statuses.filter((s) => s === 200).length;
  // Near the limit every worker syncs after each request, so over-admission is a request or two.
  t.true(admitted >= RATE_LIMIT && admitted <= RATE_LIMIT + 2, `admitted ${admitted} of ${statuses.length}`);
  t.is(statuses.filter((s) => s !== 200 && s !== 429).length, 0);
  t.is((await sandbox.request('/health', { headers: { 'x-forwarded-for': '203.0.113.43' } })).status, 200);
});

test.serial('the supervisor probes /health over HTTPS and finds it healthy', async (t) => {
  const log = sandbox.supervisorLog();
  t.regex(log, /probing https:\/\/127\.0\.0\.1:\d+\/health/);
  // The line above is printed before any probe: the count of 200s shows the probes themselves.
  const healthOk = 'resilient_api_http_requests_total{method="GET",route="/health",status_code="200"}';
  const before = sample(await scrapeMetrics(sandbox), healthOk) ?? 0;
  await sleep(2500); // HEALTH_CHECK_INTERVAL_MS=1000 in the sandbox; nothing else asks meanwhile
  const after = sample(await scrapeMetrics(sandbox), healthOk) ?? 0;
  t.true(after - before >= 2, `${after - before} healthy probes in 2.5 s`);
  t.notRegex(sandbox.supervisorLog(), /Service unhealthy/);
});

test.serial('on both workers, a token in another spelling or beyond its lifetime gets the generic 401, counted by reason', async (t) => {
  const ip = '203.0.113.46';
  const session = await login('victim', 'victim-password', ip);
  t.is(session.status, 200, session.text);
  const token: string = session.body.token;
  const iat = Math.floor(Date.now() / 1000);
  const tenYears = await new SignJWT({ name: 'victim', sub: String(session.body.user.id), iss: 'resilient-api', iat, exp: iat + 10 * 365 * 24 * 3600 })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(sandbox.env['JWT_SECRET'] ?? ''));
  const metric = (reason: string) => `resilient_api_auth_failures_total{reason="${reason}"}`;
  const before = await scrapeMetrics(sandbox);
  // A fresh connection each, so both workers answer some.
  const me = (authorization: string) => sandbox.request('/api/me', { headers: { authorization, 'x-forwarded-for': ip } });
  const replies = await Promise.all([...Array(4).fill(`Bearer ${token}=`), ...Array(4).fill(`Bearer ${tenYears}`)].map(me));
  for (const reply of replies) {
    t.is(reply.status, 401);
    t.deepEqual(reply.body, { code: 'Unauthorized', message: 'Authentication required', requestId: reply.headers['x-request-id'] });
    t.is(reply.headers['www-authenticate'], 'Bearer realm="resilient-api", error="invalid_token"');
  }
  const delta = changes(before, await scrapeMetrics(sandbox));
  t.is(delta(metric('malformed')), 4);
  t.is(delta(metric('lifetime')), 4);
  t.is((await me(`Bearer ${token}`)).status, 200);
});
