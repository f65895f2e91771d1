// backend.log under PM2: two workers append to one file, the supervisor alone rotates it, and
// no line is lost or torn across the rotation.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_logs');
  sandbox = await createPm2Sandbox({
    ...db.env,
    API_INSTANCES: '2',
    LOG_MAX_BYTES: '20000',
    LOG_BACKUPS: '3',
    LOG_ROTATE_CHECK_MS: '300',
    // 600 requests from one address within seconds: past the default rate limit, whose 429s
    // are logged once per client and minute, not once per request as this test counts.
    RATE_LIMIT_PER_MINUTE: '0',
  });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

test('the supervisor rotates backend.log; lines from both workers stay whole and none is lost', async (t) => {
  const total = 600;
  // Each 404 writes one WARN line with a unique request id.
  for (let batch = 0; batch < total / 20; batch++) {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sandbox.request(`/missing-${batch * 20 + i}`, { headers: { 'x-request-id': `rot-${batch * 20 + i}` } }),
      ),
    );
  }
  await waitFor('a rotation', () => /Rotated backend\.log/.test(sandbox.supervisorLog()), 10_000);
  await new Promise((resolve) => setTimeout(resolve, 1500)); // writers reopen within a second
  const files = readdirSync(sandbox.logDir).filter((name) => /^backend\.log(\.\d+)?$/.test(name));
  t.true(files.includes('backend.log.1'), files.join(', '));
  t.true(files.length <= 4, `at most LOG_BACKUPS old files: ${files.join(', ')}`);

  const lines = files.flatMap((name) => readFileSync(path.join(sandbox.logDir, name), 'utf8').split('\n')).filter((l) => l !== '');
  const line = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [a-z]+ - (INFO|WARN|ERROR|FATAL|DEBUG) - /;
  t.deepEqual(lines.filter((l) => !line.test(l) && !/^\s+at |^\w*Error/.test(l)), [], 'every line is whole');
  const seen = new Set(lines.flatMap((l) => /Request (rot-\d+) /.exec(l)?.[1] ?? []));
  // Only the newest files are kept, so count the ids of the newest requests back from the end.
  const newest = Array.from({ length: 100 }, (_, i) => `rot-${total - 1 - i}`);
  t.deepEqual(newest.filter((id) => !seen.has(id)), [], 'no recent line is lost across the rotation');
});
