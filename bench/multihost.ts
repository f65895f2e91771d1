// Scaling figures through the load balancer (`npm run bench:multihost`, root only): the
// multi-host test's set-up (test/multihost/: three hosts made of network namespaces, one api
// worker each under its own PM2 daemon, one MariaDB namespace, the shipped deploy/haproxy.cfg in
// front), then
//   1. GET /api/me through HAProxy with 1, 2 and 3 hosts in the backend, in alternating rounds
//      (the others drained through HAProxy's runtime API: health checks keep running on all),
//      with the CPU time per request of every process involved, by component;
//   2. 15 s of load with one host's link cut from 5 s to 10 s: GETs and POSTs that failed.
// Writes bench/results/<date>-multihost.md and .json. Everything it starts is removed at the end,
// also on failure or Ctrl+C.
//
//   npm run bench:multihost
//   npm run bench:multihost -- --quick                 1 round of 2 s per size, a 9 s cut (checks the code)
//   BENCH_ROUNDS=5 BENCH_SECONDS=8 BENCH_CONNECTIONS=64 npm run bench:multihost
import path from 'node:path';
import { BENCH_ENV, fixed } from './lib/context';
import { median, runLoad, type Sample, startTimeline } from './lib/load';
import {
  type ComponentCpu,
  type CutResult,
  multihostMarkdown,
  type MultihostResults,
  type Outcomes,
  type ScalingRound,
  type ScalingRow,
  writeMultihostResults,
} from './lib/multihostReport';
import { cpuBetween, type ProcessGroups, readCpu } from './lib/processCpu';
import { runInfo } from './lib/report';
import { ROOT } from '../test/helpers/service';
import { sleep, waitFor } from '../test/helpers/wait';
import { type ClusterParts, startCluster, stopCluster } from '../test/multihost/cluster';
import type { Host } from '../test/multihost/hosts';
import { loadBalancerBinary } from '../test/multihost/lbBinaries';
import type { RunningHaproxy } from '../test/multihost/loadBalancers';
import { ip, removeLeftovers } from '../test/multihost/topology';

const HOST_COUNT = 3;
const POST_CONNECTIONS = 2;

interface Settings {
  readonly quick: boolean;
  readonly rounds: number;
  readonly seconds: number;
  readonly connections: number;
  readonly cut: { readonly seconds: number; readonly downAt: number; readonly upAt: number };
}

function settingsFrom(argv: readonly string[], env: NodeJS.ProcessEnv): Settings {
  const quick = argv.includes('--quick');
  const number = (name: string, fallback: number): number => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, not ${env[name]}`);
    return value;
  };
  return {
    quick,
    rounds: number('BENCH_ROUNDS', quick ? 1 : 3),
    seconds: number('BENCH_SECONDS', quick ? 2 : 8),
    connections: number('BENCH_CONNECTIONS', 32),
    cut: quick ? { seconds: 9, downAt: 3, upAt: 6 } : { seconds: 15, downAt: 5, upAt: 10 },
  };
}

/** A host's processes: its api worker(s), and the rest of its namespace (PM2 daemon, supervisor, backup app). */
interface HostProcesses {
  readonly api: readonly number[];
  readonly others: readonly number[];
}

async function hostProcesses(host: Host): Promise<HostProcesses> {
  const apps = JSON.parse(await host.pm2('jlist')) as Array<{ name: string; pid: number }>;
  const api = apps.filter((app) => app.name === 'api' && app.pid > 0).map((app) => app.pid);
  // Read after jlist has exited: its own CLI process is no longer in the namespace.
  const all = ip('netns', 'pids', host.ns.name).split('\n').map(Number).filter((pid) => Number.isInteger(pid) && pid > 1);
  if (api.length === 0) throw new Error(`${host.id}: no api process in pm2 jlist`);
  return { api, others: all.filter((pid) => !api.includes(pid)) };
}

/** HAProxy's per-server 2xx answers so far, by host id. */
async function answersPerHost(haproxy: RunningHaproxy): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const row of await haproxy.stat()) {
    if (row['pxname'] === 'api' && row['svname'] !== 'BACKEND') counts[row['svname'] ?? ''] = Number(row['hrsp_2xx'] ?? 0);
  }
  return counts;
}

/** The first `count` hosts serve (state ready), the others are drained: no traffic, still checked. */
async function serveWith(haproxy: RunningHaproxy, hosts: readonly Host[], count: number): Promise<void> {
  for (const [index, host] of hosts.entries()) {
    const answer = await haproxy.runtime(`set server api/${host.id} state ${index < count ? 'ready' : 'drain'}`);
    if (answer.trim() !== '') throw new Error(`HAProxy: set server api/${host.id}: ${answer.trim()}`);
  }
  await waitFor(`HAProxy to serve with ${count} host(s)`, async () => {
    const states = await haproxy.serverStates();
    return hosts.every((host, index) => states[host.id] === (index < count ? 'UP' : 'DRAIN'));
  }, 15_000, 100);
}

async function measureRound(
  haproxy: RunningHaproxy,
  hosts: readonly Host[],
  processes: readonly HostProcesses[],
  databasePid: number,
  token: string,
  settings: Settings,
): Promise<ScalingRound> {
  const groups: ProcessGroups = {
    apiWorkers: processes.flatMap((host) => host.api),
    pm2AndSupervisor: processes.flatMap((host) => host.others),
    haproxy: [haproxy.pid],
    mariadb: [databasePid],
  };
  const load = (durationSeconds: number) =>
    runLoad({ url: `${haproxy.url}/api/me`, connections: settings.connections, durationSeconds, headers: { authorization: `Bearer ${token}` } });
  // Warm-up: keep-alive connections at both hops, the workers' JIT.
  await load(1);
  const answersBefore = await answersPerHost(haproxy);
  const cpuBefore = readCpu(groups);
  const clientBefore = process.cpuUsage();
  const result = await load(settings.seconds);
  const client = process.cpuUsage(clientBefore);
  const used = cpuBetween(groups, cpuBefore, readCpu(groups));
  const answersAfter = await answersPerHost(haproxy);

  const answered = result.byStatus['200'] ?? 0;
  const perRequest = (ms: number): number => (ms * 1000) / Math.max(1, answered);
  const component = (name: string): number => perRequest(used[name] ?? 0);
  const cpu: ComponentCpu = {
    apiWorkers: component('apiWorkers'),
    haproxy: component('haproxy'),
    mariadb: component('mariadb'),
    pm2AndSupervisor: component('pm2AndSupervisor'),
    total: perRequest(Object.values(used).reduce((sum, ms) => sum + ms, 0)),
    loadClient: perRequest((client.user + client.system) / 1000),
  };
  const served = hosts.map((host) => (answersAfter[host.id] ?? 0) - (answersBefore[host.id] ?? 0));
  const servedTotal = served.reduce((sum, count) => sum + count, 0);
  return {
    requestsPerSecond: result.requestsPerSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    requests: result.requests,
    failed: result.errors + (result.requests - answered),
    cpuMicrosPerRequest: cpu,
    sharePercent: served.map((count) => (100 * count) / Math.max(1, servedTotal)),
  };
}

function summarize(hosts: number, rounds: readonly ScalingRound[]): ScalingRow {
  const of = (pick: (round: ScalingRound) => number): number => median(rounds.map(pick));
  const cpu = (name: keyof ComponentCpu): number => of((round) => round.cpuMicrosPerRequest[name]);
  return {
    hosts,
    rounds,
    requestsPerSecond: of((round) => round.requestsPerSecond),
    p50Ms: of((round) => round.p50Ms),
    p99Ms: of((round) => round.p99Ms),
    cpuMicrosPerRequest: {
      apiWorkers: cpu('apiWorkers'),
      haproxy: cpu('haproxy'),
      mariadb: cpu('mariadb'),
      pm2AndSupervisor: cpu('pm2AndSupervisor'),
      total: cpu('total'),
      loadClient: cpu('loadClient'),
    },
    sharePercent: Array.from({ length: hosts }, (_, index) => rounds.reduce((sum, round) => sum + (round.sharePercent[index] ?? 0), 0) / Math.max(1, rounds.length)),
    failed: rounds.reduce((sum, round) => sum + round.failed, 0),
  };
}

async function measureScaling(parts: Required<ClusterParts>, token: string, settings: Settings, log: (line: string) => void): Promise<ScalingRow[]> {
  const { hosts, haproxy, db } = parts;
  const processes = await Promise.all(hosts.map(hostProcesses));
  const sizes = Array.from({ length: hosts.length }, (_, index) => index + 1);
  const rounds = new Map<number, ScalingRound[]>(sizes.map((size) => [size, []]));
  // Every host warmed up first (JIT, pools, keep-alive connections), so no round pays for it.
  await serveWith(haproxy, hosts, hosts.length);
  await runLoad({ url: `${haproxy.url}/api/me`, connections: settings.connections, durationSeconds: settings.quick ? 2 : 4, headers: { authorization: `Bearer ${token}` } });
  for (let round = 0; round < settings.rounds; round++) {
    // Up one round, down the next: each size is measured early and late alike.
    for (const size of round % 2 === 0 ? sizes : [...sizes].reverse()) {
      await serveWith(haproxy, hosts, size);
      const measured = await measureRound(haproxy, hosts.slice(0, size), processes.slice(0, size), db.pid, token, settings);
      rounds.get(size)?.push(measured);
      log(
        `round ${round + 1}, ${size} host(s): ${fixed(measured.requestsPerSecond)} req/s, p99 ${fixed(measured.p99Ms)} ms, ` +
          `${fixed(measured.cpuMicrosPerRequest.total)} µs CPU per request, ${measured.failed} failed`,
      );
    }
  }
  await serveWith(haproxy, hosts, hosts.length);
  return sizes.map((size) => summarize(size, rounds.get(size) ?? []));
}

function outcomesOf(samples: readonly Sample[], expected: number): Outcomes {
  const failedSamples = samples.filter((sample) => sample.status !== expected);
  const times = samples.filter((sample) => sample.status === expected).map((sample) => sample.ms).sort((a, b) => a - b);
  const quantile = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  return {
    requests: samples.length,
    failed: failedSamples.length,
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    failures: failedSamples.slice(0, 5).map((sample) => `status ${sample.status}${sample.error ? ` (${sample.error})` : ''} after ${sample.ms} ms`),
  };
}

/** Steady GET and POST load, one host's link down in the middle; what failed. */
async function measureCut(parts: Required<ClusterParts>, token: string, settings: Settings): Promise<CutResult> {
  const { hosts, haproxy } = parts;
  const victim = hosts[1] ?? hosts[0]!;
  const { seconds, downAt, upAt } = settings.cut;
  const retriesBefore = await haproxy.retryCounts();
  const startedAt = Date.now();
  const getLoad = runLoad({ url: `${haproxy.url}/api/me`, connections: settings.connections, durationSeconds: seconds, headers: { authorization: `Bearer ${token}` } });
  const label = `cut${startedAt.toString(36)}`;
  // Our own clients for the POSTs: every outcome is kept, and those in flight at the end are waited for.
  const posts = startTimeline(
    haproxy.url,
    (sequence) => ({ method: 'POST', path: '/api/register', body: JSON.stringify({ username: `${label}-${sequence}`, password: 'cut-load-password-1' }) }),
    POST_CONNECTIONS,
  );
  // HAProxy's view of the victim, every 100 ms: when it went DOWN and came back UP.
  const states: Array<{ at: number; state: string }> = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const state = (await haproxy.serverStates().catch(() => ({}) as Record<string, string>))[victim.id] ?? '?';
      if (states.at(-1)?.state !== state) states.push({ at: Date.now(), state });
      await sleep(100);
    }
  })();
  await sleep(startedAt + downAt * 1000 - Date.now());
  const cutAt = Date.now();
  victim.cutLink();
  await sleep(startedAt + upAt * 1000 - Date.now());
  const restoredAt = Date.now();
  victim.restoreLink();
  const get = await getLoad;
  const postSamples = await posts.stop();
  await waitFor(`HAProxy to mark ${victim.id} UP again`, async () => (await haproxy.serverStates())[victim.id] === 'UP', 30_000, 100);
  await sleep(300);
  watching = false;
  await watcher;
  const retriesAfter = await haproxy.retryCounts();

  const downSeenAt = states.find((entry) => entry.at >= cutAt && entry.state === 'DOWN')?.at;
  const upSeenAt = states.find((entry) => entry.at >= restoredAt && entry.state === 'UP')?.at;
  const answered = get.byStatus['200'] ?? 0;
  const getFailed = get.errors + (get.requests - answered);
  const otherStatuses = Object.entries(get.byStatus).filter(([status]) => status !== '200').map(([status, count]) => `${count} × status ${status}`);
  return {
    host: victim.id,
    seconds,
    cutAtSeconds: downAt,
    restoredAtSeconds: upAt,
    get: {
      requests: get.requests + get.errors,
      failed: getFailed,
      p50Ms: get.p50Ms,
      p99Ms: get.p99Ms,
      failures: [...otherStatuses, ...(get.errors > 0 ? [`${get.errors} errors (${get.timeouts} timeouts)`] : [])],
    },
    post: outcomesOf(postSamples, 201),
    downAfterMs: downSeenAt === undefined ? undefined : downSeenAt - cutAt,
    upAfterMs: upSeenAt === undefined ? undefined : upSeenAt - restoredAt,
    retries: retriesAfter.retries - retriesBefore.retries,
    redispatches: retriesAfter.redispatches - retriesBefore.redispatches,
  };
}

function assertStarted(parts: ClusterParts): asserts parts is Required<ClusterParts> {
  if (!parts.db || !parts.haproxy) throw new Error('the multi-host set-up did not complete');
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error(
      '✖ npm run bench:multihost needs root: it creates network namespaces, veth pairs and a bridge (ip netns, ip link). ' +
        'Run it as root, e.g. sudo npm run bench:multihost',
    );
    return 1;
  }
  const settings = settingsFrom(process.argv.slice(2), process.env);
  const log = (line: string): void => {
    process.stderr.write(`  … ${line}\n`);
  };
  // Ctrl+C or a kill: nothing of the run may stay behind (namespaces, daemons, HAProxy, mariadbd).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: removing the namespaces, daemons and HAProxy (unless another run owns them)`);
      removeLeftovers();
      process.exit(130);
    });
  }
  const haproxyBinary = loadBalancerBinary('haproxy');
  log(`${haproxyBinary.version} (${haproxyBinary.source})`);
  const parts: ClusterParts = { hosts: [] };
  try {
    const ready = await startCluster(parts, {
      hostCount: HOST_COUNT,
      haproxyBinary,
      // The load comes from one client address: the request and login limits are turned out of the way, as in `npm run bench`.
      env: BENCH_ENV,
      user: { username: 'bench-user', password: 'bench-password-1' },
    });
    assertStarted(parts);
    log(`${HOST_COUNT} hosts ready in ${(ready.hostsStartMs / 1000).toFixed(1)} s; HAProxy at ${parts.haproxy.url}`);
    const scaling = await measureScaling(parts, ready.token, settings, log);
    log(`cutting ${parts.hosts[1]?.id}'s link under load`);
    const cut = await measureCut(parts, ready.token, settings);
    const results: MultihostResults = {
      settings: {
        haproxy: haproxyBinary.version,
        connections: settings.connections,
        rounds: settings.rounds,
        seconds: settings.seconds,
        postConnections: POST_CONNECTIONS,
      },
      scaling,
      cut,
    };
    const info = runInfo(ROOT, settings.quick);
    console.log(multihostMarkdown(info, results));
    const written = writeMultihostResults(path.join(ROOT, 'bench', 'results'), info, results);
    log(`written: ${path.relative(ROOT, written.md)}, ${path.relative(ROOT, written.json)}`);
    return 0;
  } finally {
    await stopCluster(parts);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
