// What /metrics reads about backups (src/platform/backups/status.ts), straight from a folder: the newest
// backup of each kind, its size, the duration the job recorded for that very file, and the
// failed runs. The live scrape of a cluster is tested in alert-rules.test.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { readBackupView, readStatusFile, recordBackupOutcome, statusFileName } from '../src/platform/backups/status';
import { tempDir } from './helpers/service';

const DB = 'ra_status';
const seconds = (iso: string): number => Date.parse(iso) / 1000;

test('a folder that does not exist shows no backup and no failure', async (t) => {
  t.deepEqual(await readBackupView(path.join(tempDir('ra-status-'), 'missing'), DB), { newest: {}, failures: 0 });
});

test('the newest backup of each kind, by its name; other files are not backups', async (t) => {
  const dir = tempDir('ra-status-');
  const files: Record<string, string> = {
    [`${DB}-20261128T013000Z.sql.gz`]: 'old',
    [`${DB}-20261130T013000Z.sql.gz`]: 'newer',
    [`${DB}-20261130T013000Z-2.sql.gz`]: 'newest, same second',
    [`${DB}-20261129T120000Z-predeploy.sql.gz`]: 'deploy',
    [`other_db-20261201T000000Z.sql.gz`]: 'another database',
    [`.${DB}-1796100000000-42.partial`]: 'a run still writing',
    'notes.txt': 'an operator\'s file',
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  const view = await readBackupView(dir, DB);
  t.deepEqual(view.newest, {
    scheduled: { takenAtSeconds: seconds('2026-11-30T01:30:00Z'), bytes: 'newest, same second'.length },
    predeploy: { takenAtSeconds: seconds('2026-11-29T12:00:00Z'), bytes: 'deploy'.length },
  });
});

test('the recorded duration shows only for the file it was recorded for', async (t) => {
  const dir = tempDir('ra-status-');
  const first = `${DB}-20261130T013000Z.sql.gz`;
  writeFileSync(path.join(dir, first), 'x');
  await recordBackupOutcome(dir, DB, { ok: true, kind: 'scheduled', file: path.join(dir, first), durationMs: 2500 });
  t.is((await readBackupView(dir, DB)).newest.scheduled?.durationSeconds, 2.5);
  // A newer backup the job did not record (copied in by hand): its duration is unknown.
  writeFileSync(path.join(dir, `${DB}-20261201T013000Z.sql.gz`), 'y');
  t.is((await readBackupView(dir, DB)).newest.scheduled?.durationSeconds, undefined);
});

test('failed runs count up and keep the last time; a success keeps the count', async (t) => {
  const dir = tempDir('ra-status-');
  await recordBackupOutcome(dir, DB, { ok: false }, 1_000_000);
  await recordBackupOutcome(dir, DB, { ok: false }, 2_000_000);
  writeFileSync(path.join(dir, `${DB}-20261201T013000Z.sql.gz`), 'z');
  await recordBackupOutcome(dir, DB, { ok: true, kind: 'scheduled', file: `${DB}-20261201T013000Z.sql.gz`, durationMs: 10 });
  const view = await readBackupView(dir, DB);
  t.is(view.failures, 2);
  t.is(view.lastFailureAtSeconds, 2000);
  t.is(view.newest.scheduled?.durationSeconds, 0.01);
});

test('a damaged status file reads as empty, and the next run writes a whole one', async (t) => {
  const dir = tempDir('ra-status-');
  writeFileSync(path.join(dir, statusFileName(DB)), '{"failures": 3, "lastFail');
  t.deepEqual(await readStatusFile(dir, DB), { failures: 0 });
  await recordBackupOutcome(dir, DB, { ok: false }, 5000);
  t.deepEqual(await readStatusFile(dir, DB), { failures: 1, lastFailureAt: 5000 });
});

test('a folder that cannot take the note makes recording throw (the job logs it and goes on)', async (t) => {
  const parent = tempDir('ra-status-');
  const notAFolder = path.join(parent, 'file');
  writeFileSync(notAFolder, '');
  await t.throwsAsync(recordBackupOutcome(notAFolder, DB, { ok: false }));
  mkdirSync(path.join(parent, 'ok'));
  await t.notThrowsAsync(recordBackupOutcome(path.join(parent, 'ok'), DB, { ok: false }));
});
