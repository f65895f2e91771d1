// /api/status with a million users beside the same with ten: the count must not cost more.
import type { TestDatabase } from '../../test/helpers/database';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { alternatingRounds } from '../lib/load';
import { fillUsers } from '../lib/users';
import { sleep } from '../../test/helpers/wait';

/**
 * After a bulk insert InnoDB keeps flushing dirty pages for a while, taking CPU from whichever
 * service is measured then: wait until it is done (at most a minute) so both sides compare fairly.
 */
async function untilFlushed(db: TestDatabase): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const rows = await db.query<Array<{ Variable_name: string; Value: string }>>(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_buffer_pool_pages_dirty', 'Innodb_buffer_pool_pages_total')",
    );
    const value = (name: string): number => Number(rows.find((row) => row.Variable_name === name)?.Value ?? 0);
    if (value('Innodb_buffer_pool_pages_dirty') <= value('Innodb_buffer_pool_pages_total') * 0.01) return;
    await sleep(1000);
  }
}

export async function statusAtScale(ctx: BenchContext): Promise<ScenarioResult> {
  // A quick run only proves the scenario runs: a small table, and no wait for InnoDB's flushing.
  const bigCount = ctx.quick ? 2_000 : 1_000_000;
  const small = await ctx.database('ra_bench_small');
  const big = await ctx.database('ra_bench_big');
  await fillUsers(small, 10);
  const filled = Date.now();
  await fillUsers(big, bigCount);
  ctx.log(`inserted ${bigCount} users in ${((Date.now() - filled) / 1000).toFixed(1)} s`);
  if (!ctx.quick) await untilFlushed(big);
  const smallService = await ctx.startService(small.env);
  const bigService = await ctx.startService(big.env);
  // Noisy machine: five alternating rounds, medians.
  const rounds = ctx.quick ? 1 : 5;
  const { reference: tenUsers, measured: manyUsers, ratio } = await alternatingRounds({
    referenceUrl: smallService.url,
    measuredUrl: bigService.url,
    path: '/api/status',
    rounds,
    seconds: ctx.seconds(10),
  });
  const check = await bigService.request('/api/status');
  const smallRps = tenUsers.requestsPerSecond;
  const bigRps = manyUsers.requestsPerSecond;
  const bigP99 = manyUsers.p99Ms;
  return {
    scenario: `/api/status, ${bigCount.toLocaleString('en')} users vs 10`,
    measured: `${fixed(bigRps)} req/s vs ${fixed(smallRps)} req/s = ${fixed(ratio, 2)}; p99 ${fixed(bigP99, 1)} ms; total_users ${check.body?.stats?.total_users}`,
    target: 'within 10% of 10 users',
    pass: ratio >= 0.9 && check.body?.stats?.total_users === bigCount,
    figures: { users: bigCount, bigRps, smallRps, ratio, bigP99Ms: bigP99, rounds },
  };
}
