// Size and time of a backup and a restore of 100,000 users, through the real commands
// (the compiled backup entry and scripts/restore.ts), on a database of its own that is dropped
// at the end. Run after `npm run build`:  npx tsx bench/backupRestore.ts [USERS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { restoreHoldOffMs } from '../src/backup/restore';
import { loadConfig } from '../src/config';
import { migrate } from '../src/db/migrate';
import { getLogger } from '../src/logger';
import { ROOT } from '../test/helpers/service';
import { fakePasswordHash } from './lib/users';

const USERS = Number(process.argv[2] ?? 100_000);
const BATCH = 5_000;
// 64-byte keys, twice what passwords.ts writes: kept so the figures stay comparable with the
// ones recorded in the README.
const fakeHash = (): string => fakePasswordHash(64);

function timed(command: string, args: string[], env: Record<string, string>): number {
  const started = process.hrtime.bigint();
  const run = spawnSync(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (run.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${run.stderr.toString()}`);
  return ms;
}

async function main(): Promise<void> {
  const database = `ra_bench_${process.pid}`;
  const work = mkdtempSync(path.join(os.tmpdir(), 'ra-bench-'));
  const env = {
    NODE_ENV: 'test',
    MYSQL_DATABASE: database,
    BACKUP_DIR: path.join(work, 'backups'),
    LOG_DIR: path.join(work, 'logs'),
  };
  const config = loadConfig({ ...process.env, ...env });
  const { host, port, user, password } = config.db;
  const admin = await mysql.createConnection({ host, port, user, password });
  try {
    await migrate(config.db, getLogger('bench'));
    await admin.query(`USE \`${database}\``);
    const insertStarted = Date.now();
    for (let first = 0; first < USERS; first += BATCH) {
      const rows = Array.from({ length: Math.min(BATCH, USERS - first) }, (_, i) => [
        `bench${first + i}`,
        `bench${first + i}@example.com`,
        fakeHash(),
      ]);
      await admin.query('INSERT INTO users (username, email, password_hash) VALUES ?', [rows]);
    }
    const insertMs = Date.now() - insertStarted;

    const backupMs = timed(process.execPath, [path.join(ROOT, 'dist/src/backup/main.js')], env);
    const [file] = readdirSync(env.BACKUP_DIR).map((name) => path.join(env.BACKUP_DIR, name));
    if (!file) throw new Error('no backup written');
    const gz = statSync(file).size;
    const sqlBytes = Number(spawnSync('sh', ['-c', `gunzip -c '${file}' | wc -c`]).stdout.toString().trim());

    await admin.query('DROP TABLE users');
    const restoreMs = timed(process.execPath, ['--import', 'tsx', 'scripts/restore.ts', file, '--yes'], env);
    const [[count]] = await admin.query<mysql.RowDataPacket[]>(
      'SELECT (SELECT COUNT(*) FROM users) AS n, (SELECT total_users FROM user_stats) AS counted',
    );
    const holdOffMs = restoreHoldOffMs(config.db);

    const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    console.log(`| ${USERS} users | |`);
    console.log('|---|---|');
    console.log(`| insert (multi-row INSERT, ${BATCH} a statement) | ${s(insertMs)} |`);
    console.log(`| backup: node dist/src/backup/main.js (the PM2 app), wall time | ${s(backupMs)} |`);
    console.log(`| backup file (gzip) | ${mib(gz)} (${gz} bytes) |`);
    console.log(`| dump uncompressed | ${mib(sqlBytes)} (${sqlBytes} bytes) |`);
    console.log(`| restore: tsx scripts/restore.ts FILE --yes (npm run restore), wall time | ${s(restoreMs)} |`);
    console.log(`|   of which the hold-off for the service's monitors | ${s(holdOffMs)} |`);
    console.log(`| rows after restore / total_users | ${count?.['n']} / ${count?.['counted']} |`);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
