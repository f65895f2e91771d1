// The shared rate limiter and the client address, without a server: a fake shared store that
// several "workers" (limiter instances) use together, and a clock the test moves.
import type { IncomingMessage } from 'node:http';
import test from 'ava';
import type { RequestCountStore } from '../src/db/requestCounts';
import { clientIpResolver, parseTrustedProxies } from '../src/http/clientIp';
import { SharedRateLimiter, WINDOW_MS } from '../src/http/rateLimit';
import { getLogger } from '../src/logger';

/** The shared table, in memory; `failing` makes it behave like an unreachable database. */
class FakeStore implements RequestCountStore {
  readonly rows = new Map<string, number>();
  failing = false;
  statements = 0;

  async add(windowStart: number, increments: ReadonlyMap<string, number>): Promise<Map<string, number>> {
    this.statements++;
    if (this.failing) throw new Error('connect ECONNREFUSED');
    const totals = new Map<string, number>();
    for (const [client, n] of increments) {
      const key = `${windowStart}|${client}`;
      this.rows.set(key, (this.rows.get(key) ?? 0) + n);
      totals.set(client, this.rows.get(key) ?? 0);
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
  const workers = [1, 2].map(() => new SharedRateLimiter(20, store, log, () => now));
  let admitted = 0;
  // Round robin, as PM2's cluster hands out connections, with time for syncs between requests.
  for (let i = 0; i < 60; i++) {
    if (workers[i % 2]?.take('203.0.113.1').allowed) admitted++;
    await settle();
  }
  t.true(admitted >= 20 && admitted <= 22, `admitted ${admitted} of 60 with a limit of 20 on 2 workers`);
  // Another client has its own budget.
  t.true(workers[0]?.take('203.0.113.2').allowed);
  // The next minute starts afresh; rows of minutes before the previous one are purged.
  now += WINDOW_MS;
  t.true(workers[1]?.take('203.0.113.1').allowed);
  now += WINDOW_MS;
  t.true(workers[1]?.take('203.0.113.1').allowed);
  await settle();
  t.false([...store.rows.keys()].some((key) => key.startsWith(String(10 * WINDOW_MS))));
});

test('far below the limit, requests are synced in batches, not one statement each', async (t) => {
  const store = new FakeStore();
  const limiter = new SharedRateLimiter(1000, store, log, () => 5 * WINDOW_MS);
  for (let i = 0; i < 100; i++) t.true(limiter.take(`198.51.100.${i % 10}`).allowed);
  t.is(store.statements, 0, 'nothing is written per request');
  await limiter.sync();
  t.is(store.statements, 1, 'one statement carries the batch');
  t.is(store.rows.get(`${5 * WINDOW_MS}|198.51.100.3`), 10);
});

test('decisions carry the headers\' numbers; refusals are logged once per client and minute', (t) => {
  const limiter = new SharedRateLimiter(3, new FakeStore(), log, () => 7 * WINDOW_MS + 15_000);
  const decisions = Array.from({ length: 5 }, () => limiter.take('192.0.2.1'));
  t.deepEqual(decisions.map((d) => d.allowed), [true, true, true, false, false]);
  t.deepEqual(decisions.map((d) => d.remaining), [2, 1, 0, 0, 0]);
  t.deepEqual(decisions.map((d) => d.firstRefusal), [false, false, false, true, false]);
  t.is(decisions[0]?.resetAt, 8 * WINDOW_MS);
});

test('an unreachable store leaves each worker limiting on its own counts', async (t) => {
  const store = new FakeStore();
  store.failing = true;
  const limiter = new SharedRateLimiter(5, store, log, () => 3 * WINDOW_MS);
  const allowed: boolean[] = [];
  for (let i = 0; i < 8; i++) {
    allowed.push(limiter.take('192.0.2.9').allowed);
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
  t.deepEqual(parseTrustedProxies(['10.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/32']).problems, []);
  t.is(parseTrustedProxies(['10.0.0.0/33', 'proxy.local', '1.2.3.4/x', '1.2.3.4/8/9']).problems.length, 4);
});
