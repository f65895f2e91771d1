// backend.log under PM2: two workers append to one file, the supervisor alone rotates it, and
// no line is lost or torn across the rotation.
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_logs');
  sandbox = await createPm2Sandbox({
    ...db.env,
    API_INSTANCES: '2',
    LOG_MAX_BYTES: '20000',
    LOG_BACKUPS: '9', // room for a few extra rotations on a slow machine, so no batch is deleted
    LOG_ROTATE_CHECK_MS: '1000',
    // Hundreds of requests from one address within seconds: past the default rate limit, whose
    // 429s are logged once per client and minute, not once per request as this test counts.
    RATE_LIMIT_PER_MINUTE: '0',
  });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

const rotations = (): number => sandbox.supervisorLog().match(/Rotated backend\.log/g)?.length ?? 0;

/** Returns once no rotation has happened for 2.5 s: the check period and the reopen period. */
async function waitForQuiet(): Promise<void> {
  let seen = rotations();
  let quietSince = Date.now();
  while (Date.now() - quietSince < 2500) {
    await sleep(200);
    const now = rotations();
    if (now !== seen) {
      seen = now;
      quietSince = Date.now();
    }
  }
}

test('the supervisor rotates backend.log; lines from both workers stay whole and none is lost', async (t) => {
  // Each 404 writes one WARN line with a unique request id, from whichever worker got it.
  const send = async (from: number, count: number): Promise<void> => {
    for (let batch = from; batch < from + count; batch += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => sandbox.request(`/missing`, { headers: { 'x-request-id': `rot-${batch + i}` } })),
      );
    }
  };
  await send(0, 200); // well past LOG_MAX_BYTES
  await waitFor('a rotation', () => rotations() > 0, 10_000);

  // The second batch must land after every writer has reopened the new file. A rotation can
  // still be due from the first batch's tail (a busy machine checks late), and a rotation
  // during the batch splits it across files by design; so wait for a quiet spell (a check
  // period plus a writer's reopen period) and send again with fresh ids until one batch
  // lands with no rotation around it.
  let batchStart = 200;
  for (;;) {
    await waitForQuiet();
    const before = rotations();
    await send(batchStart, 60);
    await waitForQuiet(); // a rotation the batch itself triggers comes within a check period
    if (rotations() === before) break;
    if (batchStart >= 560) return t.fail('the log never settled between batches');
    batchStart += 60;
  }
  const sent = batchStart + 60;

  const files = readdirSync(sandbox.logDir).filter((name) => /^backend\.log(\.\d+)?$/.test(name));
  t.true(files.includes('backend.log.1'), files.join(', '));
  t.true(files.length <= 10, `at most LOG_BACKUPS old files: ${files.join(', ')}`);
  const read = (name: string): string[] =>
    readFileSync(path.join(sandbox.logDir, name), 'utf8').split('\n').filter((l) => l !== '');
  const lines = files.flatMap(read);
  const whole = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [a-z]+ - (INFO|WARN|ERROR|FATAL|DEBUG) - /;
  t.deepEqual(lines.filter((l) => !whole.test(l) && !/^\s+at |^\w*Error/.test(l)), [], 'every line is whole');
  const ids = (text: string[]): Set<string> => new Set(text.flatMap((l) => /Request (rot-\d+) /.exec(l)?.[1] ?? []));
  const everywhere = ids(lines);
  const missing = Array.from({ length: sent }, (_, i) => `rot-${i}`).filter((id) => !everywhere.has(id));
  t.deepEqual(missing, [], 'no line is lost across the rotation');
  // Both workers reopened: every line written after the rotation is in the new file.
  const current = ids(read('backend.log'));
  t.deepEqual(Array.from({ length: 60 }, (_, i) => `rot-${batchStart + i}`).filter((id) => !current.has(id)), []);
});
