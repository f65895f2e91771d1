// /health under 64 connections, one worker, beside the bare restify baseline with one worker:
// the cost of the request path itself (headers, request id, metrics, request log), which PM2's
// spread over the cores would otherwise blur.
import { measureBesideBaseline } from '../lib/beside';
import type { BenchContext, ScenarioResult } from '../lib/context';

export async function healthThroughput(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_health');
  const service = await ctx.startService(db.env, 1);
  const bareRestify = await ctx.startBaseline(1);
  return measureBesideBaseline(ctx, {
    scenario: '/health, 1 worker, 64 connections',
    serviceUrl: service.url,
    baselineUrl: bareRestify.url,
    path: '/health',
    minRatio: 0.85,
    maxP99Ms: 20,
  });
}
