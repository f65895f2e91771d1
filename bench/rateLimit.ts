// What the per-client rate limiter costs: /api/status throughput of the production ecosystem
// (2 PM2 cluster workers by default) with RATE_LIMIT_PER_MINUTE=0 and with the limiter on at
// 100,000,000 a minute, of which the benchmark never reaches half: every request takes the
// limiter's normal path (count, headers, batched sync), as a client well under its limit does. Both clusters run side
// by side in one run, and measurements alternate between them round by round so drifting
// background load hits both alike. Prints each round and the medians.
//
//   npm run bench:ratelimit
//   BENCH_ROUNDS=5 BENCH_SECONDS=3 BENCH_CONNECTIONS=20 API_INSTANCES=2 npm run bench:ratelimit
//   BENCH_ON_LIMIT=0 npm run bench:ratelimit     A/A run: both without the limiter (noise floor)
//
// Uses the MySQL/MariaDB of MYSQL_* (default 127.0.0.1:3306 root), in a database of its own
// that it drops at the end, and PM2 daemons of its own under /tmp (test/helpers/pm2.ts), killed
// at the end.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { build, ECOSYSTEM_FILE, runScript, step, waitForHealth } from '../src/platform/pm2/operator';
import { createTestDatabase } from '../test/helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from '../test/helpers/pm2';
import { median } from './lib/load';

const rounds = Number(process.env['BENCH_ROUNDS'] ?? 5);
const seconds = Number(process.env['BENCH_SECONDS'] ?? 3);
const connections = Number(process.env['BENCH_CONNECTIONS'] ?? 20);
const workers = process.env['API_INSTANCES'] ?? '2';
/** BENCH_ON_LIMIT=0 makes an A/A run (both clusters without the limiter): the noise floor. */
const onLimit = process.env['BENCH_ON_LIMIT'] ?? '100000000';
const server = {
  host: process.env['MYSQL_HOST'] ?? '127.0.0.1',
  port: Number(process.env['MYSQL_PORT'] ?? 3306),
  user: process.env['MYSQL_USER'] ?? 'root',
  password: process.env['MYSQL_PASSWORD'] ?? '',
};

interface Cluster {
  readonly name: string;
  readonly sandbox: Pm2Sandbox;
  /** The api workers' pids, to read the CPU time they spend. */
  readonly pids: number[];
}

/** The api app alone (the supervisor's probes would be noise here) under a PM2 daemon of its own. */
async function startCluster(name: string, sandbox: Pm2Sandbox): Promise<Cluster> {
  await sandbox.pm2('start', ECOSYSTEM_FILE, '--env', 'production', '--only', 'api');
  const health = await waitForHealth(sandbox.url, 30_000);
  if (health.status !== 200) throw new Error(`${name}: /health answered ${health.status} ${health.body}`);
  return { name, sandbox, pids: (await sandbox.workers()).map((worker) => worker.pid) };
}

/** CPU time (user + system) the processes have used, in ms, from /proc (Linux). */
function cpuMs(pids: number[]): number {
  const ticksPerSecond = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return (ticks * 1000) / ticksPerSecond;
}

interface Measurement {
  readonly rps: number;
  /** Workers' CPU time per request: unlike throughput, hardly moved by other load on the machine. */
  readonly cpuMicrosPerRequest: number;
  readonly non2xx: number;
}

async function measure(cluster: Cluster, durationSeconds: number): Promise<Measurement> {
  const cpuBefore = cpuMs(cluster.pids);
  const result = await autocannon({ url: `${cluster.sandbox.url}/api/status`, connections, duration: durationSeconds });
  const cpu = cpuMs(cluster.pids) - cpuBefore;
  return {
    rps: result.requests.average,
    cpuMicrosPerRequest: (cpu * 1000) / Math.max(1, result.requests.total),
    non2xx: result.non2xx + result.errors + result.timeouts,
  };
}

async function main(): Promise<void> {
  build();
  const db = await createTestDatabase('ra_bench_ratelimit', server);
  const sandboxes: Pm2Sandbox[] = [];
  const clusters: Cluster[] = [];
  const sandboxWith = async (rateLimit: string): Promise<Pm2Sandbox> => {
    const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: workers, RATE_LIMIT_PER_MINUTE: rateLimit });
    sandboxes.push(sandbox); // destroyed at the end even if it never gets healthy
    return sandbox;
  };
  try {
    step(`Starting two clusters of ${workers} worker(s): rate limit off, and on`);
    // One after the other: both migrate the same database.
    clusters.push(await startCluster('limiter off', await sandboxWith('0')));
    clusters.push(await startCluster('limiter on', await sandboxWith(onLimit)));
    for (const cluster of clusters) await measure(cluster, 1); // warm-up

    const results = new Map<string, number[]>(clusters.map((c) => [c.name, []]));
    // Each round's on/off ratio compares two measurements seconds apart, so its median is the
    // figure least moved by other load on the machine.
    const ratios: number[] = [];
    const cpu = new Map<string, number[]>(clusters.map((c) => [c.name, []]));
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first, so neither always runs right after the other.
      const order = round % 2 ? clusters : [...clusters].reverse();
      const line: string[] = [];
      for (const cluster of order) {
        const { rps, cpuMicrosPerRequest, non2xx } = await measure(cluster, seconds);
        if (non2xx > 0) throw new Error(`${cluster.name}: ${non2xx} responses were not 2xx`);
        results.get(cluster.name)?.push(rps);
        cpu.get(cluster.name)?.push(cpuMicrosPerRequest);
        line.push(`${cluster.name} ${Math.round(rps)} req/s ${cpuMicrosPerRequest.toFixed(0)} µs CPU/req`);
      }
      const latest = (name: string) => results.get(name)?.at(-1) ?? 0;
      ratios.push(latest('limiter on') / latest('limiter off'));
      step(`round ${round}: ${line.join(', ')} (ratio ${ratios.at(-1)?.toFixed(3)})`);
    }
    const off = median(results.get('limiter off') ?? []);
    const on = median(results.get('limiter on') ?? []);
    const cpuOff = median(cpu.get('limiter off') ?? []);
    const cpuOn = median(cpu.get('limiter on') ?? []);
    console.log(
      `\n/api/status, ${workers} PM2 worker(s), ${connections} connections, ${rounds} rounds of ${seconds} s each\n` +
        `median without the rate limiter: ${Math.round(off)} req/s\n` +
        `median with the rate limiter:    ${Math.round(on)} req/s\n` +
        `ratio of the medians ${(on / off).toFixed(3)} (cost ${((1 - on / off) * 100).toFixed(1)}%)\n` +
        `median of the rounds' ratios ${median(ratios).toFixed(3)} (cost ${((1 - median(ratios)) * 100).toFixed(1)}%)\n` +
        `workers' CPU per request (median): ${cpuOff.toFixed(0)} µs without, ${cpuOn.toFixed(0)} µs with ` +
        `(cost ${((cpuOn / cpuOff - 1) * 100).toFixed(1)}%)`,
    );
  } finally {
    for (const sandbox of sandboxes) await sandbox.destroy();
    await db.drop();
  }
}

runScript(main);
