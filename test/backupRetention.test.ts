// Retention keeps scheduled backups and deploy backups apart: however many deploys took a
// backup before migrating, the last BACKUP_KEEP scheduled backups stay.
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { backupFileName, parseBackupName } from '../src/platform/backups/dumpFile';
import { pruneBackups } from '../src/platform/backups/retention';
import { tempDir } from './helpers/service';

test('ten deploy backups in a day leave the nightly backups alone, and keep their own bound', async (t) => {
  const dir = tempDir('ra-retention-');
  const day = (n: number, hour = 1): Date => new Date(Date.UTC(2026, 10, n, hour, 30));
  const nightly = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backupFileName('accounts', day(n)));
  const deploys = Array.from({ length: 10 }, (_, i) => backupFileName('accounts', day(8, 9 + i), 1, 'predeploy'));
  const sameSecond = backupFileName('accounts', day(8, 20), 2, 'predeploy');
  for (const name of [...nightly, ...deploys, sameSecond, 'other-20261101T013000Z.sql.gz']) writeFileSync(path.join(dir, name), '');

  t.is(deploys[0], 'accounts-20261108T093000Z-predeploy.sql.gz');
  t.is(sameSecond, 'accounts-20261108T203000Z-2-predeploy.sql.gz');
  t.deepEqual(parseBackupName('accounts', sameSecond), { stamp: '20261108T203000Z', sequence: 2, kind: 'predeploy' });

  const removed = await pruneBackups(dir, 'accounts', { scheduled: 7, predeploy: 3 });
  t.is(removed.length, 1 + 8);
  const left = readdirSync(dir).sort();
  t.deepEqual(
    left.filter((name) => !name.includes('predeploy') && name.startsWith('accounts-')),
    nightly.slice(1),
    'the 7 newest nightly backups',
  );
  t.deepEqual(
    left.filter((name) => name.includes('predeploy')),
    [...deploys.slice(-2), sameSecond].sort(),
    'the 3 newest deploy backups',
  );
  t.true(left.includes('other-20261101T013000Z.sql.gz'), "another database's backup is never touched");
});
