// GET /api/me with a valid bearer token, one worker, 64 connections, beside a bare restify route
// that verifies the same token with jose and reads the same row through a mysql2 pool
// (bench/baselineMe.js): what the service's checks, metrics and logs cost on an authenticated read.
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { alternatingRounds } from '../lib/load';

export async function meThroughput(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_me');
  const service = await ctx.startService(db.env, 1);
  const account = { username: 'reader', password: 'reader-password' };
  const created = await service.request('/api/register', { body: account });
  if (created.status !== 201) throw new Error(`setup failed: ${created.text}`);
  const login = await service.request('/api/login', { body: account });
  const token = (login.body as { token?: unknown } | undefined)?.token;
  if (login.status !== 200 || typeof token !== 'string') throw new Error(`setup failed: ${login.text}`);
  // The same secret (the sandboxes share it) and the same database as the service.
  const bare = await ctx.startBaseline(1, { script: 'baselineMe.js', env: db.env, probe: '/api/me' });
  const headers = { authorization: `Bearer ${token}` };
  const check = await bare.request('/api/me', { headers });
  if (check.status !== 200) throw new Error(`the baseline refused the token: ${check.status} ${check.text}`);
  const rounds = ctx.quick ? 1 : 5;
  const { reference: baseline, measured: me, ratio } = await alternatingRounds({
    referenceUrl: bare.url,
    measuredUrl: service.url,
    path: '/api/me',
    headers,
    rounds,
    seconds: ctx.seconds(8),
  });
  const failures = me.runs.reduce((sum, r) => sum + r.errors + r.timeouts + (r.requests - (r.byStatus['200'] ?? 0)), 0);
  const { requestsPerSecond: serviceRps, p50Ms, p99Ms } = me;
  const baselineRps = baseline.requestsPerSecond;
  return {
    scenario: '/api/me, 1 worker, 64 connections',
    measured: `${fixed(serviceRps)} req/s = ${fixed(ratio, 2)} × baseline ${fixed(baselineRps)}; p50 ${fixed(p50Ms, 1)} ms, p99 ${fixed(p99Ms, 1)} ms`,
    target: '≥ 0.8 × baseline',
    pass: ratio >= 0.8 && failures === 0,
    figures: { serviceRps, baselineRps, ratio, p50Ms, p99Ms, failures, rounds },
  };
}
