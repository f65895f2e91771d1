// Registrations under 64 connections: every 201 is a row, nothing is duplicated, nothing fails.
import { randomBytes } from 'node:crypto';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { runLoad } from '../lib/load';

export async function registrations(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_register');
  const service = await ctx.startService(db.env);
  const run = randomBytes(3).toString('hex');
  const seconds = ctx.seconds(10);
  const result = await runLoad({
    url: `${service.url}/api/register`,
    connections: 64,
    durationSeconds: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    bodyFor: (n) => JSON.stringify({ username: `r${run}-${n}`, password: 'registration-password' }),
  });
  const created = result.byStatus['201'] ?? 0;
  const serverErrors = Object.entries(result.byStatus)
    .filter(([code]) => code.startsWith('5'))
    .reduce((sum, [, count]) => sum + count, 0);
  const [{ rows } = { rows: 0 }] = await db.query<Array<{ rows: number }>>(
    'SELECT COUNT(*) AS `rows` FROM users WHERE username LIKE ?',
    [`r${run}-%`],
  );
  const [{ duplicates } = { duplicates: 0 }] = await db.query<Array<{ duplicates: number }>>(
    'SELECT COUNT(*) AS duplicates FROM (SELECT LOWER(username) FROM users GROUP BY LOWER(username) HAVING COUNT(*) > 1) d',
  );
  const [{ total } = { total: 0 }] = await db.query<Array<{ total: number }>>('SELECT total_users AS total FROM user_stats');
  const perSecond = created / seconds;
  return {
    scenario: 'registrations, 64 connections',
    measured: `${fixed(perSecond, 1)} registrations/s; ${created} answered 201, ${rows} rows, ${duplicates} duplicates, ${serverErrors} 5xx, ${result.errors} errors; total_users ${total}`,
    target: 'every 201 is a row; no duplicate; no 5xx',
    pass: Number(rows) === created && Number(duplicates) === 0 && serverErrors === 0 && result.errors === 0 && Number(total) === created,
    figures: { perSecond, created, rows: Number(rows), duplicates: Number(duplicates), serverErrors, errors: result.errors },
  };
}
