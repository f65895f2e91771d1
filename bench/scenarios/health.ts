// /health under 64 connections, one worker, beside the bare restify baseline with one worker:
// the cost of the request path itself (headers, request id, metrics, request log), which PM2's
// spread over the cores would otherwise blur.
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { alternatingRounds } from '../lib/load';

export async function healthThroughput(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_health');
  const service = await ctx.startService(db.env, 1);
  const bareRestify = await ctx.startBaseline(1);
  // The machine is shared and noisy (±5% between runs): five alternating rounds, medians.
  const rounds = ctx.quick ? 1 : 5;
  const { reference: baseline, measured: health, ratio } = await alternatingRounds({
    referenceUrl: bareRestify.url,
    measuredUrl: service.url,
    path: '/health',
    rounds,
    seconds: ctx.seconds(8),
  });
  const failures = health.runs.reduce((sum, r) => sum + r.errors + r.timeouts + (r.requests - (r.byStatus['200'] ?? 0)), 0);
  const { requestsPerSecond: serviceRps, p50Ms, p99Ms } = health;
  const baselineRps = baseline.requestsPerSecond;
  return {
    scenario: '/health, 1 worker, 64 connections',
    measured: `${fixed(serviceRps)} req/s = ${fixed(ratio, 2)} × baseline ${fixed(baselineRps)}; p50 ${fixed(p50Ms, 1)} ms, p99 ${fixed(p99Ms, 1)} ms`,
    target: '≥ 0.85 × baseline; p99 < 20 ms',
    pass: ratio >= 0.85 && p99Ms < 20 && failures === 0,
    figures: { serviceRps, baselineRps, ratio, p50Ms, p99Ms, failures, rounds },
  };
}
