// Registrations under 64 connections: every 201 is a row, nothing is duplicated, nothing fails.
import { randomBytes } from 'node:crypto';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { startTimeline } from '../lib/load';
import { sleep } from '../../test/helpers/wait';

export async function registrations(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_register');
  const service = await ctx.startService(db.env);
  const run = randomBytes(3).toString('hex');
  const seconds = ctx.seconds(10);
  const usernameOf = (sequence: number): string => `r${run}-${sequence}`;
  // Our own closed-loop clients: each request's outcome is known, and the ones in flight at
  // the end are waited for, so every 201 can be matched with a row.
  const timeline = startTimeline(
    service.url,
    (sequence) => ({
      method: 'POST',
      path: '/api/register',
      body: JSON.stringify({ username: usernameOf(sequence), password: 'registration-password' }),
    }),
    64,
  );
  await sleep(seconds * 1000);
  const samples = await timeline.stop();
  const created = samples.filter((s) => s.status === 201);
  const serverErrors = samples.filter((s) => s.status >= 500).length;
  const networkErrors = samples.filter((s) => s.status === 0).length;
  const rows = await db.query<Array<{ username: string }>>('SELECT username FROM users WHERE username LIKE ?', [`r${run}-%`]);
  const stored = new Set(rows.map((row) => row.username));
  const missing = created.filter((s) => !stored.has(usernameOf(s.sequence))).length;
  const [{ duplicates } = { duplicates: 0 }] = await db.query<Array<{ duplicates: number }>>(
    'SELECT COUNT(*) AS duplicates FROM (SELECT LOWER(username) FROM users GROUP BY LOWER(username) HAVING COUNT(*) > 1) d',
  );
  const [{ total } = { total: 0 }] = await db.query<Array<{ total: number }>>('SELECT total_users AS total FROM user_stats');
  const perSecond = created.length / seconds;
  return {
    scenario: 'registrations, 64 connections',
    measured:
      `${fixed(perSecond, 1)} registrations/s; ${created.length} answered 201, ${rows.length} rows (${missing} answers without a row), ` +
      `${duplicates} duplicates, ${serverErrors} 5xx, ${networkErrors} network errors; total_users ${total}`,
    target: 'every 201 is a row; no duplicate; no 5xx',
    pass:
      missing === 0 &&
      rows.length === created.length &&
      Number(duplicates) === 0 &&
      serverErrors === 0 &&
      networkErrors === 0 &&
      Number(total) === created.length,
    figures: {
      perSecond,
      created: created.length,
      rows: rows.length,
      missing,
      duplicates: Number(duplicates),
      serverErrors,
      networkErrors,
    },
  };
}
