// The operator scripts that mirror the original Windows entry points, against a PM2 daemon of
// the test's own: they start, report, stop, and fail with one clear message.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { freePort } from './helpers/ports';
import { runScript, type ScriptRun } from './helpers/scripts';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase('ra_scripts');
});
test.after.always(async () => {
  await db?.drop();
});

/** Runs scripts/<name>.ts as `npm` would, with the sandbox's environment; a build and start take a while. */
const runOperatorScript = (name: string, env: Record<string, string>, args: string[] = []): Promise<ScriptRun> =>
  runScript(name, args, { env, timeoutMs: 180_000 });

async function sandboxFor(extra: Record<string, string> = {}): Promise<Pm2Sandbox> {
  return createPm2Sandbox({ ...db.env, API_INSTANCES: '2', ...extra });
}

test.serial('start-server-production builds, migrates, starts 2 workers and the supervisor, and npm stop removes them', async (t) => {
  const sandbox = await sandboxFor();
  try {
    const started = await runOperatorScript('start-server-production', sandbox.env);
    t.is(started.code, 0, started.stderr);
    t.regex(started.stdout, new RegExp(`resilient-api is running at http://127\\.0\\.0\\.1:${sandbox.port} .*2 worker\\(s\\)`));
    t.is((await sandbox.request('/health')).status, 200);
    const procs = await sandbox.list();
    // The backup app ran once at start (no backup then) and waits for its cron time, stopped.
    t.deepEqual(procs.map((p) => `${p.name}:${p.pm2_env.status}`).sort(), [
      'api:online',
      'api:online',
      'backup:stopped',
      'supervisor:online',
    ]);
    t.is(procs.find((p) => p.name === 'api')?.pm2_env['exec_mode'], 'cluster_mode');

    // Again while running: a reload, not a port conflict.
    const again = await runOperatorScript('start-server-production', sandbox.env);
    t.is(again.code, 0, again.stderr);
    t.regex(again.stdout, /already running: reloading it without downtime/);

    const stopped = await runOperatorScript('stop-server', sandbox.env);
    t.is(stopped.code, 0, stopped.stderr);
    t.regex(stopped.stdout, /Stopping api[\s\S]*Stopping supervisor[\s\S]*Stopping backup[\s\S]*Stopped/);
    await t.throwsAsync(sandbox.request('/health', { timeoutMs: 1000 }));
  } finally {
    await sandbox.destroy();
  }
});

test.serial('run-server --production refuses a port in use with one clear message', async (t) => {
  const sandbox = await sandboxFor();
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(sandbox.port, '127.0.0.1', resolve));
  try {
    const run = await runOperatorScript('run-server', sandbox.env, ['--production']);
    t.is(run.code, 1);
    t.regex(run.stderr, new RegExp(`✖ Port ${sandbox.port} on 127\\.0\\.0\\.1 is already in use by another program`));
    t.notRegex(run.stderr, /\n\s+at /, 'no stack trace');
    t.deepEqual(await sandbox.list(), [], 'nothing was started');
  } finally {
    blocker.close();
    await sandbox.destroy();
  }
});

test.serial('start-server-production stops with a clear message when the database is unreachable', async (t) => {
  const sandbox = await sandboxFor({ MYSQL_PORT: String(await freePort()) });
  try {
    const run = await runOperatorScript('start-server-production', sandbox.env);
    t.is(run.code, 1);
    t.regex(run.stderr, /✖ Database unreachable for migration at 127\.0\.0\.1:\d+\/\w+: .*ECONNREFUSED/);
    t.deepEqual(await sandbox.list(), [], 'nothing was started');
  } finally {
    await sandbox.destroy();
  }
});

test.serial('start-server-production refuses a bad configuration, naming the variables', async (t) => {
  const sandbox = await sandboxFor({ DB_RETRIES: '0', JWT_SECRET: 'too-short' });
  try {
    const run = await runOperatorScript('start-server-production', sandbox.env);
    t.is(run.code, 1);
    t.regex(run.stderr, /✖ Invalid configuration: .*DB_RETRIES must be .*JWT_SECRET must be at least 32 characters/);
    t.deepEqual(await sandbox.list(), [], 'nothing was started');
  } finally {
    await sandbox.destroy();
  }
});

test.serial('start-server (development) runs in the foreground, streams logs, and Ctrl+C removes everything', async (t) => {
  const sandbox = await sandboxFor();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'start-server.ts')], {
    cwd: ROOT,
    env: sandbox.env,
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await waitFor('the development URL', () => /resilient-api \(development\) is running at/.test(output), 60_000, 200);
    t.regex(output, new RegExp(`running at http://127\\.0\\.0\\.1:${sandbox.port}`));
    // The apps' own output is streamed here with a prefix.
    await waitFor('streamed api output', () => /api 0 \| .* - app - INFO - Listening on http:\/\/127\.0\.0\.1/.test(output), 10_000);
    t.regex(output, /supervisor \| .*Supervisor started/);
    const procs = await sandbox.list();
    const api = procs.find((p) => p.name === 'api');
    t.deepEqual(api?.pm2_env['watch'], [path.join(ROOT, 'src')], 'hot reload of src/ is on');
    t.is((await sandbox.request('/health')).status, 200);

    child.kill('SIGINT');
    t.is(await exited, 0);
    t.regex(output, /Ctrl\+C: stopping and removing api, supervisor, backup[\s\S]*Stopped/);
    await t.throwsAsync(sandbox.request('/health', { timeoutMs: 1000 }));
    // Nothing restarts: the daemon is gone, and a fresh one knows no apps.
    await sleep(4000);
    t.deepEqual(await sandbox.list(), []);
  } finally {
    child.kill('SIGKILL');
    await sandbox.destroy();
  }
});
