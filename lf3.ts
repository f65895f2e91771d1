import { createTestDatabase } from './test/helpers/database';
import { createPm2Sandbox } from './test/helpers/pm2';
import { runLoad } from './bench/lib/load';
import { BENCH_ENV } from './bench/lib/context';
(async () => {
  const db = await createTestDatabase('ra_lf');
  const sb = await createPm2Sandbox({ ...BENCH_ENV, ...db.env, API_INSTANCES: '2' });
  try {
  await sb.startEcosystem('production', 2);
  await sb.request('/api/register', { body: { username: 'flood', password: 'flood-password' } });
  const r = await runLoad({ url: sb.url + '/api/login', connections: 64, durationSeconds: 10, method: 'POST', headers: { 'content-type': 'application/json' }, bodyFor: (n) => JSON.stringify({ username: 'flood', password: n % 2 ? 'flood-password' : 'wrong-password' }) });
  console.log(r.byStatus, r.requests / 10);
  const log = sb.backendLog().split('\n');
  console.log(log.filter(l => / - (WARN|ERROR) - /.test(l) && !/Login failed/.test(l)).slice(0, 12).join('\n'));
  const counts = new Map(); for (const l of log) { const m = / - (\w+) - (INFO|WARN|ERROR) - /.exec(l); if (m) counts.set(m[1]+' '+m[2], (counts.get(m[1]+' '+m[2])||0)+1); } console.log(counts);
  } catch (e) { console.log('ERR', e); }
  await sb.destroy(); await db.drop(); process.exit(0);
})();
