// /health under 64 connections, beside the bare restify baseline with as many workers.
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { alternatingRounds, median } from '../lib/load';

export async function healthThroughput(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_health');
  const service = await ctx.startService(db.env);
  const baseline = await ctx.startBaseline();
  // The machine is shared and noisy (±5% between runs): five alternating rounds, medians.
  const rounds = ctx.quick ? 1 : 5;
  const { reference: baselineRuns, measured: serviceRuns } = await alternatingRounds({
    referenceUrl: baseline.url,
    measuredUrl: service.url,
    path: '/health',
    rounds,
    seconds: ctx.seconds(8),
  });
  const serviceRps = median(serviceRuns.map((r) => r.requestsPerSecond));
  const baselineRps = median(baselineRuns.map((r) => r.requestsPerSecond));
  const p50 = median(serviceRuns.map((r) => r.p50Ms));
  const p99 = median(serviceRuns.map((r) => r.p99Ms));
  const ratio = serviceRps / baselineRps;
  const failures = serviceRuns.reduce((sum, r) => sum + r.errors + r.timeouts + (r.requests - (r.byStatus['200'] ?? 0)), 0);
  return {
    scenario: '/health, 64 connections',
    measured: `${fixed(serviceRps)} req/s = ${fixed(ratio, 2)} × baseline ${fixed(baselineRps)}; p50 ${fixed(p50, 1)} ms, p99 ${fixed(p99, 1)} ms`,
    target: '≥ 0.8 × baseline; p99 < 20 ms',
    pass: ratio >= 0.8 && p99 < 20 && failures === 0,
    figures: { serviceRps, baselineRps, ratio, p50Ms: p50, p99Ms: p99, failures, rounds },
  };
}
