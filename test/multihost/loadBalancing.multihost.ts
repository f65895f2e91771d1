// Several hosts behind a real load balancer, tested as real hosts (`npm run test:multihost`, root
// only): three network namespaces on a bridge, each running the service under its own PM2
// daemon as an operator starts it, one MariaDB namespace they share, and the shipped
// deploy/haproxy.cfg (then deploy/nginx.conf) in front, on loopback. What a user of the service
// and its operator notice: which host answered (each host's own request log), status codes,
// dump files. Serial: each step changes the hosts the next one runs against.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { request } from '../helpers/http';
import { ROOT } from '../helpers/service';
import { sleep, waitFor } from '../helpers/wait';
import { type ClusterParts, startCluster, stopCluster, upstreams } from './cluster';
import type { Host } from './hosts';
import { loadBalancerBinary, type LoadBalancerBinary } from './lbBinaries';
import { renderNginx, type RunningHaproxy, type RunningLoadBalancer, startNginx, testNginx } from './loadBalancers';
import { type LoadResult, startLoad } from './load';
import { RUN_ROOT } from './topology';

interface Context extends ClusterParts {
  nginx?: RunningLoadBalancer;
  haproxyBinary?: LoadBalancerBinary;
  nginxBinary?: LoadBalancerBinary;
  /** A token of a user registered through the load balancer. */
  token: string;
  /** When every host was ready: scheduled backups are judged from then on. */
  readyAt: number;
  /**
   * When a host's backup app could be cut off from the database (its link cut) or restarted (a
   * reload): a scheduled backup then may be missed (never taken twice). Stopping the api alone
   * leaves the backup app running.
   */
  disturbed: Array<{ from: number; to: number }>;
}

const test = anyTest as TestFn<Context>;

const HOST_COUNT = 3;
/** A backup every 20 s (croner takes a seconds field): several scheduled times in one run. */
const BACKUP_EVERY_SECONDS = 20;
const LOGIN_MAX_FAILURES = 5;

/** Lines of the request log matching `pattern`, per host. */
const linesPerHost = (hosts: readonly Host[], pattern: RegExp): number[] =>
  hosts.map((host) => host.requestLines().filter((line) => pattern.test(line)).length);

/** How many lines matching `pattern` each host wrote since `before`, once `total` of them are in. */
async function newLinesPerHost(hosts: readonly Host[], pattern: RegExp, before: readonly number[], total: number): Promise<number[]> {
  const delta = (): number[] => linesPerHost(hosts, pattern).map((count, index) => count - (before[index] ?? 0));
  await waitFor(`${total} request-log lines matching ${pattern}`, () => delta().reduce((sum, n) => sum + n, 0) >= total, 10_000, 50);
  return delta();
}

const describe = (result: LoadResult): string =>
  `GET ${result.get.ok} ok / ${result.get.failed} failed (slowest ${result.get.slowestMs} ms), ` +
  `POST ${result.post.ok} ok / ${result.post.failed} failed, in ${result.seconds.toFixed(1)} s`;

/**
 * A caller's X-Request-Id goes through the balancer to the host and back; a request without one
 * gets the balancer's (`balancerId`), which the host echoes and logs, and the balancer logs too.
 */
async function checkRequestIds(t: ExecutionContext<Context>, url: string, balancerLog: () => string, balancerId: RegExp): Promise<void> {
  const { hosts, token } = t.context;
  const authorization = `Bearer ${token}`;
  const chosen = `multihost-${Date.now()}`;
  const passed = await request(url, '/api/me', { headers: { authorization, 'x-request-id': chosen } });
  t.is(passed.headers['x-request-id'], chosen, "the caller's id comes back");
  const given = await request(url, '/api/me', { headers: { authorization } });
  const id = String(given.headers['x-request-id']);
  t.regex(id, balancerId, 'the balancer gave the request its id');
  await waitFor(`request ids ${chosen} and ${id} in a host's request log and in the balancer's log`, () =>
    [chosen, id].every((wanted) => hosts.some((host) => host.requestLines().some((line) => line.includes(`id=${wanted}`))) && balancerLog().includes(wanted)),
  10_000, 100);
  t.pass();
}

/** What HAProxy retried since `before`, for the log. */
async function retriesSince(haproxy: RunningHaproxy, before: { retries: number; redispatches: number }): Promise<string> {
  const now = await haproxy.retryCounts();
  return `HAProxy retried ${now.retries - before.retries} and redispatched ${now.redispatches - before.redispatches}`;
}

async function waitForState(t: ExecutionContext<Context>, server: string, state: 'UP' | 'DOWN', timeoutMs: number): Promise<number> {
  const haproxy = t.context.haproxy;
  if (!haproxy) throw new Error('HAProxy is not running');
  const started = Date.now();
  await waitFor(`HAProxy to mark ${server} ${state}`, async () => (await haproxy.serverStates())[server] === state, timeoutMs, 100);
  return Date.now() - started;
}

test.before(async (t) => {
  t.context.hosts = [];
  t.context.disturbed = [];
  if (process.getuid?.() !== 0) {
    throw new Error('npm run test:multihost needs root: it creates network namespaces, veth pairs and a bridge (ip netns, ip link)');
  }
  t.context.haproxyBinary = loadBalancerBinary('haproxy');
  t.context.nginxBinary = loadBalancerBinary('nginx');
  t.log(`${t.context.haproxyBinary.version} (${t.context.haproxyBinary.source}); ${t.context.nginxBinary.version} (${t.context.nginxBinary.source})`);

  const ready = await startCluster(t.context, {
    hostCount: HOST_COUNT,
    haproxyBinary: t.context.haproxyBinary,
    env: {
      BACKUP_CRON: `*/${BACKUP_EVERY_SECONDS} * * * * *`,
      BACKUP_KEEP: '1000',
      LOGIN_MAX_FAILURES: String(LOGIN_MAX_FAILURES),
      // The load comes from one client address: the per-IP limit is not what is tested here.
      RATE_LIMIT_PER_MINUTE: '1000000',
    },
    user: { username: 'multihost-user', password: 'multihost-password-1' },
  });
  t.context.readyAt = ready.readyAt;
  t.context.token = ready.token;
  t.log(`${HOST_COUNT} hosts ready in ${(ready.hostsStartMs / 1000).toFixed(1)} s`);
});

test.after.always(async (t) => {
  await t.context.nginx?.stop();
  await stopCluster(t.context);
});

test.serial('HAProxy spreads requests over the hosts, and each host sees the real client', async (t) => {
  const { hosts, haproxy, token } = t.context;
  const pattern = /GET \/api\/me 200 /;
  const before = linesPerHost(hosts, pattern);
  const total = 30;
  for (let i = 0; i < total; i++) {
    const reply = await request(haproxy!.url, '/api/me', { headers: { authorization: `Bearer ${token}` } });
    t.is(reply.status, 200);
  }
  const perHost = await newLinesPerHost(hosts, pattern, before, total);
  t.log(`GET /api/me per host: ${perHost.join(', ')}`);
  for (const count of perHost) t.true(count >= 5, `every host answers a share (${perHost.join(', ')})`);
  // The client is 127.0.0.1 (X-Forwarded-For from the trusted proxy), not the load balancer's address.
  const lines = hosts.flatMap((host) => host.requestLines().filter((line) => pattern.test(line)));
  t.true(lines.every((line) => line.includes('ip=127.0.0.1')), lines.find((line) => !line.includes('ip=127.0.0.1')));
  await checkRequestIds(t, haproxy!.url, () => haproxy!.output(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

test.serial('a token issued by one host is accepted by every other', async (t) => {
  const [first, ...others] = t.context.hosts;
  const user = { username: 'token-traveller', password: 'token-password-1' };
  t.is((await first!.request('/api/register', { body: user })).status, 201);
  const login = await first!.request('/api/login', { body: user });
  t.is(login.status, 200);
  for (const host of others) {
    const me = await host.request('/api/me', { headers: { authorization: `Bearer ${login.body.token}` } });
    t.is(me.status, 200, `${host.id} accepts ${first!.id}'s token`);
    t.is(me.body.username, user.username);
  }
});

test.serial('login attempts through different hosts add up to one brute-force limit', async (t) => {
  const { hosts, haproxy } = t.context;
  const user = { username: 'brute-target', password: 'brute-password-1' };
  t.is((await request(haproxy!.url, '/api/register', { body: user })).status, 201);
  const pattern = /POST \/api\/login 401 /;
  const before = linesPerHost(hosts, pattern);
  for (let attempt = 1; attempt <= LOGIN_MAX_FAILURES; attempt++) {
    // A forged X-Forwarded-For changes nothing: the service takes the address HAProxy appended.
    const reply = await request(haproxy!.url, '/api/login', {
      body: { username: user.username, password: `wrong-password-${attempt}` },
      headers: { 'x-forwarded-for': `203.0.113.${attempt}` },
    });
    t.is(reply.status, 401, `attempt ${attempt}`);
  }
  const perHost = await newLinesPerHost(hosts, pattern, before, LOGIN_MAX_FAILURES);
  t.log(`failed logins per host: ${perHost.join(', ')}`);
  t.true(perHost.filter((count) => count > 0).length >= 2, 'the attempts went through more than one host');
  const blocked = await request(haproxy!.url, '/api/login', { body: user, headers: { 'x-forwarded-for': '203.0.113.99' } });
  t.is(blocked.status, 429, 'the next attempt, even with the right password, is refused on whichever host it reaches');
  t.truthy(blocked.headers['retry-after']);
});

/**
 * Steady load through HAProxy while `victim` is taken out (`disturb`) and, once HAProxy has
 * marked it DOWN and `pauseMs` has passed, brought back (`restore`); then load on until HAProxy
 * marks it UP and a little after. Asserts what both ways of losing a host promise: no GET
 * failed, and the host answers requests again once back.
 */
async function hostLostUnderLoad(
  t: ExecutionContext<Context>,
  victim: Host,
  what: {
    label: string;
    pauseMs: number;
    disturb: () => Promise<void> | void;
    restore: () => Promise<void> | void;
    /** The host loses the database too (its link cut): its scheduled backups are judged leniently meanwhile. */
    cutsTheDatabase: boolean;
  },
): Promise<{ result: LoadResult; downAfter: number; upAfter: number; retries: string }> {
  const { haproxy, token } = t.context;
  const retriesBefore = await haproxy!.retryCounts();
  const load = startLoad({ baseUrl: haproxy!.url, token, label: what.label });
  await sleep(2000);
  const disturbed = { from: Date.now(), to: Number.POSITIVE_INFINITY };
  if (what.cutsTheDatabase) t.context.disturbed.push(disturbed);
  await what.disturb();
  const downAfter = await waitForState(t, victim.id, 'DOWN', 15_000);
  await sleep(what.pauseMs);
  await what.restore();
  const upAfter = await waitForState(t, victim.id, 'UP', 30_000);
  disturbed.to = Date.now();
  const linesAtUp = victim.requestLines().length;
  await sleep(3000);
  const result = await load.stop();
  const retries = await retriesSince(haproxy!, retriesBefore);
  if (result.post.failed > 0) t.log(`POSTs failed (not retried once sent: not idempotent): ${result.post.failures.join('; ')}`);
  t.is(result.get.failed, 0, result.get.failures.join('\n'));
  t.true(result.get.ok > 100, 'the load ran');
  t.true(victim.requestLines().length > linesAtUp, `${victim.id} answers requests again once back`);
  return { result, downAfter, upAfter, retries };
}

test.serial('cutting one host\'s link under load fails no GET, and the host takes traffic again', async (t) => {
  const victim = t.context.hosts[1]!;
  const { result, downAfter, upAfter, retries } = await hostLostUnderLoad(t, victim, {
    label: 'cut',
    pauseMs: 2000,
    disturb: () => victim.cutLink(),
    restore: () => victim.restoreLink(),
    cutsTheDatabase: true,
  });
  t.log(`link of ${victim.id} cut: DOWN after ${downAfter} ms, UP ${upAfter} ms after the link came back; ${describe(result)}; ${retries}`);
});

test.serial('stopping one host\'s service under load fails no GET, and the host takes traffic again', async (t) => {
  const victim = t.context.hosts[2]!;
  const { result, downAfter, upAfter, retries } = await hostLostUnderLoad(t, victim, {
    label: 'stop',
    pauseMs: 1000,
    disturb: async () => void (await victim.pm2('stop', 'api')),
    restore: async () => void (await victim.pm2('start', 'api')),
    cutsTheDatabase: false,
  });
  t.log(`api of ${victim.id} stopped: DOWN ${downAfter} ms after pm2 stop returned, UP ${upAfter} ms after pm2 start returned; ${describe(result)}; ${retries}`);
});

test.serial('a pm2 reload on every host in turn under load fails no request', async (t) => {
  const { hosts, haproxy, token } = t.context;
  const retriesBefore = await haproxy!.retryCounts();
  const load = startLoad({ baseUrl: haproxy!.url, token, label: 'reload' });
  await sleep(2000);
  const disturbed = { from: Date.now(), to: Number.POSITIVE_INFINITY };
  t.context.disturbed.push(disturbed);
  for (const host of hosts) {
    const started = Date.now();
    await host.pm2('reload', path.join(ROOT, 'ecosystem.config.js'), '--env', 'production');
    await host.waitReady();
    await waitForState(t, host.id, 'UP', 15_000);
    t.log(`${host.id} reloaded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await sleep(1000);
  }
  disturbed.to = Date.now();
  const result = await load.stop();
  t.log(`rolling reload of ${hosts.length} hosts: ${describe(result)}; ${await retriesSince(haproxy!, retriesBefore)}`);
  t.is(result.get.failed, 0, result.get.failures.join('\n'));
  t.is(result.post.failed, 0, result.post.failures.join('\n'));
  t.true(result.get.ok > 100 && result.post.ok > 5, 'the load ran');
});

test.serial('nginx: the shipped configuration passes nginx -t, spreads requests, and a stopped host fails no GET', async (t) => {
  const { hosts, token } = t.context;
  const binary = t.context.nginxBinary!;
  const rendered = await renderNginx(upstreams(hosts), path.join(RUN_ROOT, 'nginx'));
  const checked = await testNginx(binary, rendered);
  t.true(checked.ok, checked.output);
  t.regex(checked.output, /test is successful/);
  const nginx = await startNginx(binary, rendered);
  t.context.nginx = nginx;

  const pattern = /GET \/api\/me 200 /;
  const before = linesPerHost(hosts, pattern);
  const total = 30;
  for (let i = 0; i < total; i++) {
    const reply = await request(nginx.url, '/api/me', { headers: { authorization: `Bearer ${token}` } });
    t.is(reply.status, 200);
  }
  const perHost = await newLinesPerHost(hosts, pattern, before, total);
  t.log(`GET /api/me per host through nginx: ${perHost.join(', ')}`);
  for (const count of perHost) t.true(count >= 3, `every host answers a share (${perHost.join(', ')})`);
  // nginx's own ids ($request_id) are 32 hex digits, the service's UUIDs have dashes.
  await checkRequestIds(t, nginx.url, () => readFileSync(path.join(rendered.dir, 'access.log'), 'utf8'), /^[0-9a-f]{32}$/);

  const victim = hosts[0]!;
  const load = startLoad({ baseUrl: nginx.url, token, label: 'ngx', postEveryMs: 0 });
  await sleep(2000);
  await victim.pm2('stop', 'api');
  await sleep(3000);
  await victim.pm2('start', 'api');
  await victim.waitReady();
  await sleep(2000);
  const result = await load.stop();
  t.log(`api of ${victim.id} stopped behind nginx: ${describe(result)}`);
  t.is(result.get.failed, 0, result.get.failures.join('\n'));
  t.true(result.get.ok > 100, 'the load ran');
});

test.serial('exactly one host takes each scheduled backup', async (t) => {
  const { hosts, readyAt, disturbed } = t.context;
  const periodMs = BACKUP_EVERY_SECONDS * 1000;
  // A dump is named after the second it started (UTC): it belongs to the scheduled time before it.
  const slotOf = (file: string): number | undefined => {
    const stamp = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-\d+)?\.sql\.gz$/.exec(file);
    if (!stamp) return undefined;
    const [, y, mo, d, h, mi, s] = stamp.map(Number);
    return Math.floor(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!) / periodMs) * periodMs;
  };
  const dumpsPerSlot = (): Map<number, string[]> => {
    const perSlot = new Map<number, string[]>();
    for (const host of hosts) {
      for (const file of host.scheduledDumps()) {
        const slot = slotOf(file);
        if (slot !== undefined) perSlot.set(slot, [...(perSlot.get(slot) ?? []), `${host.id}:${file}`]);
      }
    }
    return perSlot;
  };
  const quiet = (slot: number): boolean => disturbed.every(({ from, to }) => slot < from - 2000 || slot > to + 5000);
  // The scheduled times since every host was ready; at least one of them quiet (waited for if need be).
  const firstSlot = Math.ceil(readyAt / periodMs) * periodMs;
  const slotsUpTo = (end: number): number[] => {
    const slots: number[] = [];
    for (let slot = firstSlot; slot <= end; slot += periodMs) slots.push(slot);
    return slots;
  };
  if (!slotsUpTo(Date.now() - 1000).some(quiet)) {
    const lastEnd = Math.max(readyAt, ...disturbed.map(({ to }) => to));
    const nextQuiet = Math.ceil((lastEnd + 5001) / periodMs) * periodMs;
    await waitFor('a scheduled time with every host linked and running', () => Date.now() > nextQuiet + 1000, 3 * periodMs, 200);
  }
  const slots = slotsUpTo(Date.now() - 1000);
  const quietSlots = slots.filter(quiet);
  // Each quiet time's dump is written within seconds (a small database).
  await waitFor('a dump for every quiet scheduled time', () => quietSlots.every((slot) => (dumpsPerSlot().get(slot)?.length ?? 0) >= 1), 20_000, 200).catch(() => undefined);
  const perSlot = dumpsPerSlot();
  for (const slot of quietSlots) {
    const taken = perSlot.get(slot) ?? [];
    t.is(taken.length, 1, `scheduled time ${new Date(slot).toISOString()}: ${taken.join(', ') || 'no dump'}`);
  }
  for (const [slot, taken] of perSlot) t.true(taken.length <= 1, `scheduled time ${new Date(slot).toISOString()} dumped ${taken.length} times: ${taken.join(', ')}`);
  const summary = slots.map((slot) => `${new Date(slot).toISOString().slice(11, 19)}${quiet(slot) ? '' : ' (host cut or reloading)'} ${(perSlot.get(slot) ?? []).map((entry) => entry.split(':')[0]).join('+') || '-'}`);
  t.log(`scheduled times (UTC) and the host that dumped: ${summary.join(', ')}`);
  t.true(quietSlots.length >= 1, 'at least one scheduled time with every host up was checked');
});
