// GET /api/me with a valid bearer token, one worker, 64 connections, beside a bare restify route
// that verifies the same token with jose and reads the same row through a mysql2 pool
// (bench/baselineMe.js): what the service's checks, metrics and logs cost on an authenticated read.
import { measureBesideBaseline } from '../lib/beside';
import type { BenchContext, ScenarioResult } from '../lib/context';

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
  return measureBesideBaseline(ctx, {
    scenario: '/api/me, 1 worker, 64 connections',
    serviceUrl: service.url,
    baselineUrl: bare.url,
    path: '/api/me',
    headers,
    minRatio: 0.8,
  });
}
