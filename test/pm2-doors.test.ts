// The doors an operator uses, on the compiled tree, each against a PM2 daemon of the test's own:
// the bare `pm2 start ecosystem.config.js --env production` (no npm wrapper, no JWT_SECRET),
// `npm start` run again with a changed environment, the development scripts next to a running
// production, and the backups a deploy takes (none without a pending migration).
//
// Without JWT_SECRET, production keeps its secret in the project's git-ignored .jwt-secret, as an
// operator's first start would: the tests use (and, the first time, make) that file, and the
// last test file using it removes it unless it was there before (helpers/keptSecret).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { migrate } from '../src/platform/db/migrate';
import { migrations } from '../src/platform/db/migrations';
import { getLogger } from '../src/platform/logging/logger';
import { createTestDatabase, databaseConfig, type TestDatabase } from './helpers/database';
import { useKeptJwtSecret } from './helpers/keptSecret';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { runScript, type ScriptRun } from './helpers/scripts';
import { ROOT, startService, tempDir } from './helpers/service';
import { awayFromMinuteEnd, sleep, waitFor } from './helpers/wait';

const run = promisify(execFile);
const PASSWORD = 'doors-password-that-is-fine';

const databases: TestDatabase[] = [];
let releaseKeptSecret: (() => void) | undefined;
test.before(() => {
  releaseKeptSecret = useKeptJwtSecret();
});
test.after.always(async () => {
  for (const db of databases) await db.drop();
  releaseKeptSecret?.();
});

/** A sandbox whose commands run without JWT_SECRET: the service must find its secret itself. */
async function productionSandbox(db: TestDatabase, extra: Record<string, string> = {}): Promise<Pm2Sandbox> {
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', ...extra });
  // The helper's environment object is the one every command of the sandbox runs with.
  delete sandbox.env['JWT_SECRET'];
  return sandbox;
}

/** A wrapper script under scripts/ (the shell file an operator runs), with `env` only. */
async function runShellScript(name: string, args: string[], env: Record<string, string>): Promise<ScriptRun> {
  try {
    const { stdout, stderr } = await run(path.join(ROOT, 'scripts', name), args, { cwd: ROOT, env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : null, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function registerLoginMe(sandbox: Pm2Sandbox, username: string): Promise<string> {
  const created = await sandbox.request('/api/register', { body: { username, password: PASSWORD } });
  if (created.status !== 201) throw new Error(`register: ${created.status} ${created.text}`);
  const login = await sandbox.request('/api/login', { body: { username, password: PASSWORD } });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  const me = await sandbox.request('/api/me', { headers: { authorization: `Bearer ${login.body.token}` } });
  if (me.status !== 200 || me.body.username !== username) throw new Error(`me: ${me.status} ${me.text}`);
  return login.body.token as string;
}

test.serial('bare `pm2 start ecosystem.config.js --env production` serves on its own, removes the demo user, and development will not touch it', async (t) => {
  const db = await createTestDatabase('ra_doors');
  databases.push(db);
  // A development run pointed at this database seeds the demo user.
  const development = await startService({ env: { ...db.env, NODE_ENV: 'development' } });
  await waitFor('the demo user', async () => (await db.query<Array<{ n: number }>>("SELECT COUNT(*) AS n FROM users WHERE username = 'demo'"))[0]?.n === 1, 20_000);
  await development.stop();

  const backupDir = path.join(tempDir('ra-doors-'), 'backups');
  const sandbox = await productionSandbox(db, { BACKUP_DIR: backupDir });
  try {
    await sandbox.startEcosystem('production', 2);
    await registerLoginMe(sandbox, 'doorkeeper');

    // The secret is not in any app's environment under PM2 (nor in what `pm2 save` would write).
    for (const proc of await sandbox.list()) {
      const env = proc.pm2_env as { env?: Record<string, unknown> } & Record<string, unknown>;
      t.false('JWT_SECRET' in env || 'JWT_SECRET' in (env.env ?? {}), `${proc.name} has no JWT_SECRET`);
    }
    t.regex(sandbox.backendLog(), / - app - INFO - JWT secret from .*\/\.jwt-secret/);

    // Production removed the demo user that still had the published password, and said so.
    t.deepEqual(await db.query("SELECT id FROM users WHERE username = 'demo'"), []);
    await waitFor('the removal in backend.log', () => / - app - WARN - Removed user "demo" \(id \d+\) from \w+: it had the development demo password/.test(sandbox.backendLog()));
    t.is(sandbox.backendLog().match(/Removed user "demo"/g)?.length, 1, 'one worker removed it');
    t.false(existsSync(backupDir) && readdirSync(backupDir).length > 0, 'pm2 start took no backup');

    // Development next to it: refused with one line, and production keeps serving.
    const before = (await sandbox.workers()).map((worker) => worker.pid);
    // With a JWT_SECRET: development would otherwise keep one in the checkout's .dev-jwt-secret.
    const devEnv = {
      PATH: sandbox.env['PATH'] ?? '',
      HOME: sandbox.env['HOME'] ?? '',
      PM2_HOME: sandbox.home,
      PORT: String(sandbox.port),
      LOG_DIR: sandbox.logDir,
      JWT_SECRET: 'doors-development-secret-that-is-long-enough',
    };
    for (const [script, args] of [['start-server', []], ['run-server', []]] as const) {
      const refused = await runShellScript(script, [...args], devEnv);
      t.is(refused.code, 1, `${script}: ${refused.stdout}${refused.stderr}`);
      t.regex(refused.stderr, /^✖ resilient-api runs in production under this PM2 daemon \(api \(production\), supervisor \(production\), backup \(production\)\): development leaves it alone/);
      t.is(refused.stderr.trim().split('\n').length, 1, 'one line');
    }
    t.deepEqual((await sandbox.workers()).map((worker) => worker.pid), before, 'no worker was stopped or replaced');
    t.is((await sandbox.request('/health')).status, 200);

    // Production under another PM2 daemon on the same port: the port is in use.
    const otherHome = mkdtempSync('/tmp/pm2-');
    try {
      const refused = await runShellScript('start-server', [], { ...devEnv, PM2_HOME: otherHome });
      t.is(refused.code, 1);
      t.regex(refused.stderr, new RegExp(`^✖ Port ${sandbox.port} on 127\\.0\\.0\\.1 is already in use by another program`));
      t.false(existsSync(path.join(otherHome, 'pm2.pid')), 'no idle daemon left behind');
    } finally {
      await run(process.execPath, [PM2_BIN, 'kill'], { env: { ...devEnv, PM2_HOME: otherHome } }).catch(() => undefined);
      rmSync(otherHome, { recursive: true, force: true });
    }
    t.is((await sandbox.request('/health')).status, 200);
    t.deepEqual((await sandbox.workers()).map((worker) => worker.pid), before);

    // A deploy with PM2 alone: the bare reload applies the shell's changed environment.
    await run(process.execPath, [PM2_BIN, 'reload', path.join(ROOT, 'ecosystem.config.js'), '--env', 'production'], {
      cwd: ROOT,
      env: { ...sandbox.env, RATE_LIMIT_PER_MINUTE: '4' },
      timeout: 120_000,
    });
    t.false((await sandbox.workers()).some((worker) => before.includes(worker.pid)), 'every worker was replaced');
    // The headers come once half of the minute's budget is used, all workers together: by the
    // third request of 4 at the latest, whichever worker answers it. Each worker learns the
    // totals of clients past half of their limit on every sync (250 ms), so the requests are a
    // few syncs apart; and in one aligned minute, since the count starts afresh with each.
    await awayFromMinuteEnd(10_000);
    let last;
    for (let i = 0; i < 3; i++) {
      last = await sandbox.request('/api/status');
      await sleep(750);
    }
    t.is(last?.headers['x-ratelimit-limit'], '4');
  } finally {
    await sandbox.destroy();
  }
});

test.serial('npm start: a pending migration gets a -predeploy backup; a re-run applies a changed environment and takes none', async (t) => {
  const db = await createTestDatabase('ra_doors_env');
  databases.push(db);
  // The release before this one, with data: the newest migration is pending.
  await migrate(databaseConfig(db.name), getLogger('test'), { migrations: migrations.slice(0, -1) });
  await db.query("INSERT INTO users (username, password_hash) VALUES ('earlier', 'x')");
  const backupDir = path.join(tempDir('ra-doors-env-'), 'backups');
  const sandbox = await productionSandbox(db, { BACKUP_DIR: backupDir });
  const backups = (): string[] => (existsSync(backupDir) ? readdirSync(backupDir).filter((name) => !name.startsWith('.')) : []);
  try {
    const first = await runScript('start-server-production', [], { env: sandbox.env, timeoutMs: 180_000 });
    t.is(first.code, 0, first.stderr);
    t.is(backups().length, 1);
    t.regex(backups()[0] ?? '', new RegExp(`^${db.name}-\\d{8}T\\d{6}Z-predeploy\\.sql\\.gz$`), 'named apart from scheduled backups');
    const workersBefore = (await sandbox.workers()).map((worker) => worker.pid);

    const again = await runScript('start-server-production', [], { env: { ...sandbox.env, RATE_LIMIT_PER_MINUTE: '5' }, timeoutMs: 180_000 });
    t.is(again.code, 0, again.stderr);
    t.regex(again.stdout, /already running: reloading it without downtime/);
    const workersAfter = await sandbox.workers();
    t.is(workersAfter.length, 2);
    t.false(workersAfter.some((worker) => workersBefore.includes(worker.pid)), 'every worker was replaced');

    // The new limit applies: five requests in a minute, then 429. Two workers count together
    // within a request or so (docs/protection.md: near exact across workers), so one more may
    // pass; the old limit of 600 would refuse none.
    await awayFromMinuteEnd(15_000);
    const replies = [];
    for (let i = 0; i < 8; i++) {
      replies.push(await sandbox.request('/api/status'));
      await sleep(300);
    }
    const statuses = replies.map((reply) => reply.status).join(' ');
    t.regex(statuses, /^200 200 200 200 200 /);
    t.true(replies.filter((reply) => reply.status === 200).length <= 6, statuses);
    t.true(replies.slice(5, 7).some((reply) => reply.status === 429), `the 6th or 7th is refused: ${statuses}`);
    for (const reply of replies.filter((r) => r.status === 429)) t.is(reply.headers['x-ratelimit-limit'], '5', statuses);

    // Neither the re-run (nothing pending) nor the backup app's relaunch took a backup.
    await waitFor('the backup app to be relaunched and finish', async () => {
      const backup = (await sandbox.list()).find((proc) => proc.name === 'backup');
      return backup?.pm2_env.status === 'stopped' && sandbox.backendLog().split('launched outside it').length - 1 >= 2;
    }, 20_000, 200);
    t.is(backups().length, 1, backups().join(', '));
  } finally {
    await sandbox.destroy();
  }
});
