// The shared rate limiter and the client address, without a server: a fake shared store that
// several "workers" (limiter instances) use together, and a clock the test moves.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import type { RequestCountStore } from '../src/api/store/requestCounts';
import { clientIpResolver } from '../src/api/http/clientIp';
import { parseAddressList } from '../src/platform/util/addresses';
import { rateLimitHandler, SharedRateLimiter, unconfirmedAllowance, WINDOW_MS } from '../src/api/http/rateLimit';
import { createApiCounters } from '../src/api/metrics/counters';
import { ResponseWriter } from '../src/api/http/respond';
import { securityHeaderPairs } from '../src/api/http/securityHeaders';
import { waitFor } from './helpers/wait';
import { getLogger } from '../src/platform/logging/logger';

/** The shared table, in memory; `failing` makes it behave like an unreachable database. */
class FakeStore implements RequestCountStore {
  readonly rows = new Map<string, number>();
  failing = false;
  statements = 0;

  async add(windowStart: number, increments: ReadonlyMap<string, number>, alsoFrom?: number): Promise<Map<string, number>> {
    this.statements++;
    if (this.failing) throw new Error('connect ECONNREFUSED');
    const totals = new Map<string, number>();
    for (const [client, n] of increments) {
      const key = `${windowStart}|${client}`;
      this.rows.set(key, (this.rows.get(key) ?? 0) + n);
      totals.set(client, this.rows.get(key) ?? 0);
    }
    for (const [key, hits] of this.rows) {
      const [window, client = ''] = key.split('|');
      if (alsoFrom !== undefined && Number(window) === windowStart && hits >= alsoFrom) totals.set(client, hits);
    }
    return totals;
  }

  async purgeBefore(windowStart: number): Promise<void> {
    for (const key of this.rows.keys()) if (Number(key.split('|')[0]) < windowStart) this.rows.delete(key);
  }
}

const log = getLogger('test');
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('workers sharing a store admit about the limit together, not the limit each', async (t) => {
  const store = new FakeStore();
  let now = 10 * WINDOW_MS + 1000;
  const workers = [1, 2].map(() => new SharedRateLimiter(20, store, log, { workers: 2, now: () => now }));
  let admitted = 0;
  // Round robin, as PM2's cluster hands out connections, with time for syncs between requests.
  for (let i = 0; i < 60; i++) {
    if (workers[i % 2]?.take('203.0.113.1').verdict === 'admit') admitted++;
    await settle();
  }
  t.true(admitted >= 20 && admitted <= 22, `admitted ${admitted} of 60 with a limit of 20 on 2 workers`);
  // Another client has its own budget.
  t.is(workers[0]?.take('203.0.113.2').verdict, 'admit');
  // The next minute starts afresh; rows of minutes before the previous one are purged.
  now += WINDOW_MS;
  t.true(workers[1]?.take('203.0.113.1').verdict === 'admit');
  now += WINDOW_MS;
  t.true(workers[1]?.take('203.0.113.1').verdict === 'admit');
  await settle();
  t.false([...store.rows.keys()].some((key) => key.startsWith(String(10 * WINDOW_MS))));
});

test('far below the limit, requests are synced in batches, not one statement each', async (t) => {
  const store = new FakeStore();
  const limiter = new SharedRateLimiter(1000, store, log, { workers: 2, now: () => 5 * WINDOW_MS });
  for (let i = 0; i < 100; i++) t.is(limiter.take(`198.51.100.${i % 10}`).verdict, 'admit');
  t.is(store.statements, 0, 'nothing is written per request');
  await limiter.sync();
  t.is(store.statements, 1, 'one statement carries the batch');
  t.is(store.rows.get(`${5 * WINDOW_MS}|198.51.100.3`), 10);
});

test('decisions carry the headers\' numbers; refusals are logged once per client and minute', async (t) => {
  const limiter = new SharedRateLimiter(3, new FakeStore(), log, { workers: 1, now: () => 7 * WINDOW_MS + 15_000 });
  const decisions = [];
  for (let i = 0; i < 5; i++) {
    decisions.push(limiter.take('192.0.2.1'));
    await limiter.sync();
  }
  t.deepEqual(decisions.map((d) => d.verdict), ['admit', 'admit', 'admit', 'refuse', 'refuse']);
  t.deepEqual(decisions.map((d) => d.remaining), [2, 1, 0, 0, 0]);
  t.deepEqual(decisions.map((d) => d.firstRefusal), [false, false, false, true, false]);
  t.is(decisions[0]?.resetAt, 8 * WINDOW_MS);
});

test('the unconfirmed allowance keeps 2 or more workers within a tenth of the limit', (t) => {
  t.is(unconfirmedAllowance(600, 2), 60);
  t.is(unconfirmedAllowance(600, 4), 20);
  t.is(unconfirmedAllowance(600, 1), 60, 'one worker is sized as if it had a peer on another host');
  t.is(unconfirmedAllowance(5, 2), 1, 'at least one');
  for (const [limit, workers] of [[600, 2], [300, 2], [600, 8], [1000, 3], [60, 7]] as const) {
    t.true((workers - 1) * unconfirmedAllowance(limit, workers) <= limit / 10, `${limit} on ${workers}`);
  }
});

/** A shared table whose answers come back late and out of order, as from a busy database. */
class SlowStore extends FakeStore {
  private readonly held: Array<() => void> = [];
  override async add(windowStart: number, increments: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    // The increment lands at once (the INSERT); the totals reach the worker later.
    const totals = await super.add(windowStart, increments);
    await new Promise<void>((resolve) => this.held.push(resolve));
    // Read back after the wait, as the SELECT would be: it may include others' later increments.
    return new Map([...totals.keys()].map((client) => [client, this.rows.get(`${windowStart}|${client}`) ?? 0]));
  }
  /** Lets some held answers through, in a scrambled order. */
  release(count: number): void {
    for (let i = 0; i < count && this.held.length > 0; i++) this.held.splice((i * 7) % this.held.length, 1)[0]?.();
  }
}

test('a burst over workers whose syncs answer late admits at most limit + (workers - 1) x allowance', async (t) => {
  const store = new SlowStore();
  const limit = 100;
  const workerCount = 3;
  const workers = Array.from({ length: workerCount }, () => new SharedRateLimiter(limit, store, log, { workers: workerCount, now: () => 4 * WINDOW_MS + 1000 }));
  const allowance = unconfirmedAllowance(limit, workerCount);
  let admitted = 0;
  let waits = 0;
  let refused = 0;
  // Each round every worker gets a volley of requests before any sync has answered; requests told
  // to wait are simply asked again next round (the handler re-decides them after a sync).
  for (let round = 0; round < 40; round++) {
    for (const worker of workers) {
      for (let i = 0; i < 30; i++) {
        const verdict = worker.take('198.51.100.77').verdict;
        if (verdict === 'admit') admitted++;
        else if (verdict === 'wait') waits++;
        else refused++;
      }
    }
    t.true(admitted <= limit + (workerCount - 1) * allowance, `round ${round}: admitted ${admitted}`);
    store.release(round % 3);
    await settle();
  }
  store.release(1000);
  await settle();
  t.true(waits > 0, 'the burst outran the syncs');
  t.true(refused > 0);
  t.true(admitted >= limit, `admitted ${admitted}: the limit is reached, not starved by waiting`);
  t.is(store.rows.get(`${4 * WINDOW_MS}|198.51.100.77`), admitted, 'every admission reached the shared count');
});

test('a client that waits is decided after the next sync', async (t) => {
  const store = new FakeStore();
  const limiter = new SharedRateLimiter(20, store, log, { workers: 2, now: () => 9 * WINDOW_MS });
  t.is(limiter.allowance, 2);
  t.is(limiter.take('192.0.2.20').verdict, 'admit');
  t.is(limiter.take('192.0.2.20').verdict, 'admit');
  t.is(limiter.take('192.0.2.20').verdict, 'wait', 'two unconfirmed: the third waits');
  t.is(limiter.take('192.0.2.21').verdict, 'admit', 'another client is not held up');
  const synced = new Promise<void>((resolve) => limiter.afterSync(resolve));
  await synced;
  t.is(limiter.take('192.0.2.20').verdict, 'admit');
});

test('every tick, a worker learns the totals of clients past half of their limit, even ones it never served', async (t) => {
  const store = new FakeStore();
  const now = () => 6 * WINDOW_MS;
  const [served, other] = [1, 2].map(() => new SharedRateLimiter(4, store, log, { workers: 2, now }));
  t.is(served?.take('192.0.2.30').verdict, 'admit');
  await served?.sync();
  t.is(served?.take('192.0.2.30').verdict, 'admit');
  await served?.sync();
  // The client has used 2 of 4 (half) on the first worker; the second learns it on its next tick.
  other?.tick();
  await other?.sync();
  const decision = other?.take('192.0.2.30');
  t.is(decision?.verdict, 'admit');
  t.is(decision?.remaining, 1, 'the third request of 4, all workers together');
});

test('an unreachable store leaves each worker limiting on its own counts', async (t) => {
  const store = new FakeStore();
  store.failing = true;
  const limiter = new SharedRateLimiter(5, store, log, { workers: 2, now: () => 3 * WINDOW_MS });
  const allowed: boolean[] = [];
  for (let i = 0; i < 8; i++) {
    allowed.push(limiter.take('192.0.2.9').verdict === 'admit');
    await limiter.sync();
  }
  t.deepEqual(allowed, [true, true, true, true, true, false, false, false]);
});

const fakeRequest = (remoteAddress: string, forwardedFor?: string) =>
  ({ socket: { remoteAddress }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } }) as unknown as IncomingMessage;

test('X-Forwarded-For is believed only from trusted proxies, and only as far as they go', (t) => {
  const untrusting = clientIpResolver([]);
  t.is(untrusting(fakeRequest('::ffff:127.0.0.1', '203.0.113.5')), '127.0.0.1', 'ignored by default');

  const resolve = clientIpResolver(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  t.is(resolve(fakeRequest('127.0.0.1', '203.0.113.5')), '203.0.113.5');
  t.is(resolve(fakeRequest('127.0.0.1', '198.51.100.7, 203.0.113.5, 10.1.2.3')), '203.0.113.5', 'right-most untrusted hop');
  t.is(resolve(fakeRequest('127.0.0.1', 'not-an-ip, 10.1.2.3')), '10.1.2.3', 'garbage stops the walk');
  t.is(resolve(fakeRequest('fd00::1', '2001:db8::1')), '2001:db8::1');
  t.is(resolve(fakeRequest('192.0.2.50', '203.0.113.5')), '192.0.2.50', 'an untrusted peer cannot claim another address');
  t.is(resolve(fakeRequest('127.0.0.1')), '127.0.0.1');
  t.is(resolve(fakeRequest('127.0.0.1', '203.0.113.5:41234')), '203.0.113.5', 'a port is dropped');
  t.is(resolve(fakeRequest('127.0.0.1', '[2001:db8::7]:443')), '2001:db8::7');
});

test('TRUSTED_PROXIES entries are checked', (t) => {
  t.deepEqual(parseAddressList(['10.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32']).problems, []);
  t.is(parseAddressList(['10.0.0.0/33', 'proxy.local', '1.2.3.4/x', '1.2.3.4/8/9']).problems.length, 4);
});

// The hold path of the handler, on a real HTTP server in this process: the server answers 200
// to every request the handler lets through, at once or when it hands a held one back.

/** A shared table that answers only once `open()` is called (or never: a hung database). */
class GatedStore extends FakeStore {
  private opened = false;
  private readonly waiting: Array<() => void> = [];
  override async add(windowStart: number, increments: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    if (!this.opened) await new Promise<void>((resolve) => this.waiting.push(resolve));
    return super.add(windowStart, increments);
  }
  open(): void {
    this.opened = true;
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Record<string, unknown>;
  readonly ms: number;
}

async function limitedServer(
  t: { teardown(fn: () => void): void },
  limiter: SharedRateLimiter,
  resume?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ get(client: string): Promise<Answer>; url: string; held: () => number; heldOutcome(outcome: string): Promise<number> }> {
  // Every "client" is named by X-Forwarded-For, as behind a trusted proxy.
  const clientIp = (req: IncomingMessage): string => String(req.headers['x-forwarded-for']);
  const counters = createApiCounters();
  const writer = new ResponseWriter(securityHeaderPairs({ hsts: false }), () => undefined);
  const handler = rateLimitHandler(limiter, clientIp, log, resume ?? ((req, res) => void server.emit('request', req, res)), { writer, counters });
  const server = http.createServer((req, res) => {
    if (handler(req, res)) res.end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  limiter.start();
  t.teardown(() => {
    limiter.stop();
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = (client: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const req = http.get(`${url}/api/status`, { agent: false, headers: { 'x-forwarded-for': client } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as Record<string, unknown>, ms: performance.now() - started }),
        );
      });
      req.on('error', reject);
    });
  /** How many held requests ended with `outcome`, as resilient_api_rate_limit_held_total counts them. */
  const heldOutcome = async (outcome: string): Promise<number> =>
    (await counters.rateLimitHeld.get()).values.find((v) => v.labels['outcome'] === outcome)?.value ?? 0;
  return { get, url, held: handler.held, heldOutcome };
}

test.serial('held requests of a hung store are answered within the hold deadline, decided on the worker\'s counts', async (t) => {
  const store = new GatedStore();
  const limiter = new SharedRateLimiter(20, store, log, { workers: 2, holdDeadlineMs: 1000 });
  const { get, heldOutcome } = await limitedServer(t, limiter);
  const deadlinesBefore = await heldOutcome('deadline');
  // Allowance 2: the first two are admitted at once, the other four held; the store never answers.
  const answers = await Promise.all(Array.from({ length: 6 }, () => get('192.0.2.70')));
  t.deepEqual(answers.map((a) => a.status), Array(6).fill(200));
  // 1 s deadline; what is left of a timer tick and a busy machine on top.
  for (const answer of answers) t.true(answer.ms < 1800, `answered after ${Math.round(answer.ms)} ms`);
  t.true(answers.filter((a) => a.ms >= 500).length >= 4, 'four were held');
  t.is((await heldOutcome('deadline')) - deadlinesBefore, 4);
  // The store is slow: later requests are decided at once, up to the limit, none held.
  const later = await Promise.all(Array.from({ length: 16 }, () => get('192.0.2.70')));
  t.deepEqual(later.map((a) => a.status).sort(), [...Array(14).fill(200), 429, 429]);
  for (const answer of later) t.true(answer.ms < 500, `answered after ${Math.round(answer.ms)} ms`);
});

test.serial('a store that throws: held requests are decided on the worker\'s own counts', async (t) => {
  const store = new FakeStore();
  store.failing = true;
  const limiter = new SharedRateLimiter(3, store, log, { workers: 2 });
  const { get } = await limitedServer(t, limiter);
  const answers = await Promise.all(Array.from({ length: 5 }, () => get('192.0.2.71')));
  t.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 429, 429]);
  for (const answer of answers.filter((a) => a.status === 429)) {
    t.is(answer.body['code'], 'TooManyRequests');
    t.is(answer.headers['x-ratelimit-remaining'], '0');
  }
});

test.serial('a request that fails while handed back is answered 500; the others held with it are still served', async (t) => {
  const store = new GatedStore();
  const limiter = new SharedRateLimiter(10, store, log, { workers: 2 });
  let resumed = 0;
  const { get, held, heldOutcome } = await limitedServer(t, limiter, (req, res) => {
    resumed++;
    if (resumed === 1) throw new Error('a pre handler threw');
    res.end('{"ok":true}');
  });
  const errorsBefore = await heldOutcome('error');
  const pending = Array.from({ length: 4 }, () => get('192.0.2.72'));
  await waitFor('three requests held', () => held() === 3);
  store.open();
  const answers = await Promise.all(pending);
  t.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 500]);
  const failed = answers.find((a) => a.status === 500);
  t.deepEqual(Object.keys(failed?.body ?? {}).sort(), ['code', 'message', 'requestId']);
  t.is((await heldOutcome('error')) - errorsBefore, 1);
});

test.serial('one client\'s holds are capped at its remaining budget: only its overflow is refused, with the headers', async (t) => {
  const store = new GatedStore();
  const limiter = new SharedRateLimiter(10, store, log, { workers: 2 });
  t.is(limiter.allowance, 1);
  const { get, held } = await limitedServer(t, limiter);
  // 1 admitted, 9 held (what is left of its 10), 2 refused at once.
  const burst = Array.from({ length: 12 }, () => get('192.0.2.73'));
  await waitFor('nine requests held', () => held() === 9);
  // Another client near its own limit is not refused because of it.
  const other = await get('192.0.2.74');
  t.is(other.status, 200);
  store.open();
  const answers = await Promise.all(burst);
  t.deepEqual(answers.map((a) => a.status).sort(), [...Array(10).fill(200), 429, 429]);
  for (const answer of answers.filter((a) => a.status === 429)) {
    t.is(answer.headers['retry-after'], '1');
    t.is(answer.headers['x-ratelimit-limit'], '10');
    t.truthy(answer.headers['x-ratelimit-remaining']);
    t.truthy(answer.headers['x-ratelimit-reset']);
    t.is(answer.body['code'], 'TooManyRequests');
  }
  t.is(store.rows.get(`${Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS}|192.0.2.73`), 10);
});

test.serial('a client that disconnects while held leaves the queue at once and is not counted', async (t) => {
  const store = new GatedStore();
  const limiter = new SharedRateLimiter(10, store, log, { workers: 2 });
  const { get, url, held, heldOutcome } = await limitedServer(t, limiter);
  const goneBefore = await heldOutcome('gone');
  const first = get('192.0.2.75');
  // The second is held (allowance 1); its client gives up.
  const leaving = http.get(`${url}/api/status`, { agent: false, headers: { 'x-forwarded-for': '192.0.2.75' } });
  leaving.on('error', () => undefined);
  await waitFor('the request to be held', () => held() === 1);
  leaving.destroy();
  await waitFor('the held request to leave the queue', async () => held() === 0 && (await heldOutcome('gone')) - goneBefore === 1);
  store.open();
  t.is((await first).status, 200);
  const third = await get('192.0.2.75');
  t.is(third.status, 200);
  await limiter.sync();
  t.is(store.rows.get(`${Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS}|192.0.2.75`), 2, 'the request that left was not counted');
});
