// Size and time of a backup and a restore of 100,000 users, through the real commands
// (the compiled backup entry and scripts/restore.ts), on a database of its own that is dropped
// at the end. Run after `npm run build`:  npx tsx bench/backupRestore.ts [USERS]
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { inspectDumpFile } from '../src/platform/backups/dumpFile';
import { restoreHoldOffMs } from '../src/platform/backups/restore';
import { loadConfig } from '../src/platform/config';
import { createTestDatabase } from '../test/helpers/database';
import { runBackup, runScript, type ScriptRun } from '../test/helpers/scripts';
import { tempDir } from '../test/helpers/service';
import { fillUsers } from './lib/users';

const USERS = Number(process.argv[2] ?? 100_000);

/** Wall time of a command that must succeed. */
async function timed(what: string, run: () => Promise<ScriptRun>): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await run();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.code !== 0) throw new Error(`${what} failed (${result.code}): ${result.stderr}`);
  return ms;
}

async function main(): Promise<void> {
  const db = await createTestDatabase('ra_bench_backup');
  const work = tempDir('ra-bench-');
  const env = { ...db.env, BACKUP_DIR: path.join(work, 'backups'), LOG_DIR: path.join(work, 'logs') };
  try {
    const insertStarted = Date.now();
    // 64-byte keys, twice what passwords.ts writes: kept so the figures stay comparable with the
    // ones of earlier runs.
    await fillUsers(db, USERS, { prefix: 'bench', keyBytes: 64 });
    const insertMs = Date.now() - insertStarted;

    const backupMs = await timed('backup', () => runBackup({ env, timeoutMs: 600_000 }));
    const [file] = readdirSync(env.BACKUP_DIR).map((name) => path.join(env.BACKUP_DIR, name));
    if (!file) throw new Error('no backup written');
    const gz = statSync(file).size;
    const sqlBytes = (await inspectDumpFile(file)).uncompressedBytes;

    await db.query('DROP TABLE users');
    const restoreMs = await timed('restore', () => runScript('restore', [file, '--yes'], { env, timeoutMs: 600_000 }));
    const [count] = await db.query<Array<{ n: number; counted: number }>>(
      'SELECT (SELECT COUNT(*) FROM users) AS n, (SELECT total_users FROM user_stats) AS counted',
    );
    const holdOffMs = restoreHoldOffMs(loadConfig({ ...env, NODE_ENV: 'test' }).db);

    const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    console.log(`| ${USERS} users | |`);
    console.log('|---|---|');
    console.log(`| insert (multi-row INSERT, 5000 a statement) | ${s(insertMs)} |`);
    console.log(`| backup: node dist/src/backup/main.js (the PM2 app), wall time | ${s(backupMs)} |`);
    console.log(`| backup file (gzip) | ${mib(gz)} (${gz} bytes) |`);
    console.log(`| dump uncompressed | ${mib(sqlBytes)} (${sqlBytes} bytes) |`);
    console.log(`| restore: tsx scripts/restore.ts FILE --yes (npm run restore), wall time | ${s(restoreMs)} |`);
    console.log(`|   of which the hold-off for the service's monitors | ${s(holdOffMs)} |`);
    console.log(`| rows after restore / total_users | ${count?.n} / ${count?.counted} |`);
  } finally {
    await db.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
