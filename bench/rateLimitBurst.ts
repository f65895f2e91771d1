// How far a burst from one client gets past the request limit when it is spread over every
// worker: the production ecosystem (2 PM2 cluster workers by default) with
// RATE_LIMIT_PER_MINUTE=600, then bursts of 3,000 requests to /api/status at 300 concurrent, each
// starting 1 s into a fresh minute. Prints the requests admitted (not 429) per burst against the
// documented bound (limit + 10 % on one host, docs/protection.md).
//
//   npm run bench:burst
//   LIMIT=300 AMOUNT=1200 CONNECTIONS=100 BURSTS=3 API_INSTANCES=2 npm run bench:burst
//
// Uses the MySQL/MariaDB of MYSQL_* (default 127.0.0.1:3306 root), in a database of its own that
// it drops at the end, and a PM2 daemon of its own under /tmp (test/helpers/pm2.ts), killed at
// the end. Takes about a minute per burst, since each waits for a fresh minute.
import autocannon from 'autocannon';
import { createTestDatabase } from '../test/helpers/database';
import { createPm2Sandbox } from '../test/helpers/pm2';
import { sleep } from '../test/helpers/wait';
import { runScript } from '../src/platform/pm2/operator';

const limit = Number(process.env['LIMIT'] ?? 600);
const amount = Number(process.env['AMOUNT'] ?? 3000);
const connections = Number(process.env['CONNECTIONS'] ?? 300);
const bursts = Number(process.env['BURSTS'] ?? 2);
const workers = Number(process.env['API_INSTANCES'] ?? 2);
const MINUTE_MS = 60_000;

async function burst(url: string): Promise<{ admitted: number; codes: Record<number, number>; ms: number }> {
  const codes = new Map<number, number>();
  const started = Date.now();
  await autocannon({
    url,
    amount,
    connections,
    timeout: 30,
    setupClient: (client) => client.on('response', (status: number) => codes.set(status, (codes.get(status) ?? 0) + 1)),
  });
  const admitted = [...codes].filter(([code]) => code !== 429).reduce((sum, [, count]) => sum + count, 0);
  return { admitted, codes: Object.fromEntries(codes), ms: Date.now() - started };
}

async function main(): Promise<void> {
  const db = await createTestDatabase('ra_bench_burst');
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: String(workers), RATE_LIMIT_PER_MINUTE: String(limit) });
  try {
    await sandbox.startEcosystem('production', workers);
    const bound = Math.floor(limit * 1.1);
    for (let i = 1; i <= bursts; i++) {
      await sleep(MINUTE_MS - (Date.now() % MINUTE_MS) + 1000);
      const { admitted, codes, ms } = await burst(`${sandbox.url}/api/status`);
      const over = ((admitted / limit - 1) * 100).toFixed(1);
      console.log(
        `burst ${i}: ${admitted} of ${amount} admitted in ${ms} ms (limit ${limit}, ${over} % over, bound ${bound}: ` +
          `${admitted <= bound ? 'held' : 'PASSED'}); answers ${JSON.stringify(codes)}`,
      );
    }
  } finally {
    await sandbox.destroy();
    await db.drop();
  }
}

runScript(main);
