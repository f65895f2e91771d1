// After a reboot: what `pm2 startup` installs runs `pm2 resurrect` with next to no environment
// (PATH, HOME, PM2_HOME). The service started in production with its own settings, saved with
// `pm2 save`, must come back from the dump alone: the same port and settings, the same JWT
// secret (a token issued before still works), and no secret in the dump.
//
// Without JWT_SECRET, production keeps its secret in the project's git-ignored .jwt-secret, as an
// operator's first start would: the test uses (and, the first time, makes) that file, and the last
// test file using it removes it unless it was there before (helpers/keptSecret).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { KEPT_JWT_SECRET, useKeptJwtSecret } from './helpers/keptSecret';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

const run = promisify(execFile);
const PASSWORD = 'resurrect-password-is-fine';

let db: TestDatabase | undefined;
let sandbox: Pm2Sandbox | undefined;
let releaseKeptSecret: (() => void) | undefined;
test.before(() => {
  releaseKeptSecret = useKeptJwtSecret();
});
test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
  releaseKeptSecret?.();
});

test('pm2 save, pm2 kill, then pm2 resurrect with an empty environment: the same service, settings and secret', async (t) => {
  db = await createTestDatabase('ra_resurrect');
  // A non-default port (the sandbox's own) and rate limit, which only the dump can bring back.
  sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2', RATE_LIMIT_PER_MINUTE: '5' });
  delete sandbox.env['JWT_SECRET']; // the service finds its secret itself
  const pm2 = sandbox;
  await pm2.startEcosystem('production', 2);

  t.is((await pm2.request('/api/register', { body: { username: 'survivor', password: PASSWORD } })).status, 201);
  const login = await pm2.request('/api/login', { body: { username: 'survivor', password: PASSWORD } });
  t.is(login.status, 200);
  const token = login.body.token as string;

  await pm2.pm2('save');
  await pm2.pm2('kill');
  await t.throwsAsync(pm2.request('/health', { timeoutMs: 1000 }), undefined, 'down after pm2 kill');

  // What the systemd unit of `pm2 startup` runs, with what it sets.
  const bare = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', PM2_HOME: pm2.home };
  await run(process.execPath, [PM2_BIN, 'resurrect'], { cwd: '/', env: bare, timeout: 60_000 });
  await waitFor('2 api workers online', async () => (await pm2.workers()).filter((w) => w.pm2_env.status === 'online').length === 2, 30_000, 200);
  await waitFor('/health to answer 200', async () => (await pm2.request('/health', { timeoutMs: 2000 })).status === 200, 30_000, 200);
  t.deepEqual((await pm2.list()).map((proc) => proc.name).sort(), ['api', 'api', 'backup', 'supervisor']);

  const me = await pm2.request('/api/me', { headers: { authorization: `Bearer ${token}` } });
  t.is(me.status, 200, 'a token signed before the restart verifies: the same secret');
  t.is(me.body.username, 'survivor');

  // The rate limit is still 5 (paced past the workers' 250 ms sync).
  const statuses: number[] = [];
  let limitHeader: unknown;
  for (let i = 0; i < 8 && !statuses.includes(429); i++) {
    const reply = await pm2.request('/api/status');
    statuses.push(reply.status);
    if (reply.status === 429) limitHeader = reply.headers['x-ratelimit-limit'];
    await sleep(300);
  }
  t.true(statuses.includes(429), statuses.join(' '));
  t.is(limitHeader, '5');

  const secret = readFileSync(KEPT_JWT_SECRET, 'utf8').trim();
  t.false(readFileSync(path.join(pm2.home, 'dump.pm2'), 'utf8').includes(secret), 'the secret is not in the dump');
  // The backup app comes back stopped between runs, with its schedule registered again in the
  // new daemon, and no backup was taken at any launch.
  const backup = (await pm2.list()).find((proc) => proc.name === 'backup');
  t.is(backup?.pm2_env.status, 'stopped');
  const daemonLog = readFileSync(path.join(pm2.home, 'pm2.log'), 'utf8');
  const afterResurrect = daemonLog.slice(daemonLog.lastIndexOf('PM2 home'));
  t.regex(afterResurrect, new RegExp(`Registering a cron job on: ${backup?.pm_id}\\b`));
  t.notRegex(pm2.backendLog(), /Backup written/);
});
