// Logs under PM2, as an operator uses them: `pm2 logs` (live and --nostream) shows the api's and
// the supervisor's lines, backend.log and supervisor.log hold each line once and in the format,
// and the supervisor rotates backend.log, supervisor.log and PM2's own pm2.log without losing or
// tearing a line. A real PM2 daemon of the test's own, production ecosystem, two api workers.
import test from 'ava';
import { spawn } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { FAULT_INJECTION_PRODUCTION_OPT_IN } from '../src/platform/config';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { createPm2Sandbox, PM2_BIN, type Pm2Sandbox } from './helpers/pm2';
import { ROOT } from './helpers/service';
import { sleep, waitFor } from './helpers/wait';

const LOG_MAX_BYTES = 20_000;

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_pm2_logs');
  sandbox = await createPm2Sandbox({
    ...db.env,
    API_INSTANCES: '2',
    LOG_MAX_BYTES: String(LOG_MAX_BYTES),
    LOG_BACKUPS: '9', // room for a few extra rotations on a slow machine, so no batch is deleted
    LOG_ROTATE_CHECK_MS: '1000',
    // Hundreds of requests from one address within seconds: past the default rate limit, whose
    // 429s are logged once per client and minute, not once per request as this test counts.
    RATE_LIMIT_PER_MINUTE: '0',
    // The last test crashes a worker (POST /__fault/crash, loopback only).
    FAULT_INJECTION: '1',
    FAULT_INJECTION_IN_PRODUCTION: FAULT_INJECTION_PRODUCTION_OPT_IN,
  });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

/** A backend.log line: timestamp, category, level, message (stack lines follow an error line). */
const FORMAT = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - [a-z]+ - (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) - /;
const STACK_LINE = /^\s+at |^\w*Error\b/;

// eslint-disable-next-line no-control-regex -- PM2's CLI colours its prefixes
const withoutColours = (text: string): string => text.replace(/\u001b\[[0-9;]*m/g, '');
const linesOf = (text: string): string[] => text.split('\n').filter((line) => line !== '');
const readLog = (name: string): string[] => linesOf(readFileSync(path.join(sandbox.logDir, name), 'utf8'));
const backendFiles = (): string[] => readdirSync(sandbox.logDir).filter((name) => /^backend\.log(\.\d+)?$/.test(name));
/** Every line of backend.log and its rotated files. */
const allBackendLines = (): string[] => backendFiles().flatMap(readLog);

const loginAttempt = (username: string): Promise<unknown> =>
  sandbox.request('/api/login', { method: 'POST', body: { username, password: 'not-the-password' } });

/** `pm2 logs api --raw` (live only) as a child process; its output so far, and a way to end it. */
function streamLogs(app: string): { output: () => string; stop: () => void } {
  let output = '';
  const child = spawn(process.execPath, [PM2_BIN, 'logs', app, '--raw', '--lines', '0'], { cwd: ROOT, env: sandbox.env });
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return { output: () => output, stop: () => child.kill('SIGTERM') };
}

test.serial('pm2 logs shows the api\'s lines live and from history; backend.log has each line once', async (t) => {
  const live = streamLogs('api');
  try {
    // The live stream is attached once PM2's CLI prints anything; then the line must come through.
    await sleep(1500);
    await loginAttempt('pm2-logs-live');
    await waitFor('the login line in `pm2 logs api` (live)', () => /Login attempt for user: pm2-logs-live/.test(live.output()), 15_000, 100);
    const liveLine = live.output().split('\n').find((line) => line.includes('Login attempt for user: pm2-logs-live')) ?? '';
    t.regex(liveLine, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - auth - INFO - Login attempt for user: pm2-logs-live$/);
  } finally {
    live.stop();
  }

  await loginAttempt('pm2-logs-history');
  const expected = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - auth - INFO - Login attempt for user: pm2-logs-history$/;
  await waitFor('the login line in backend.log', () => allBackendLines().some((line) => expected.test(line)), 10_000);
  // The same line through PM2's CLI, from the file's history.
  const history = withoutColours(await sandbox.pm2('logs', 'api', '--nostream', '--lines', '100'));
  const shown = history.split('\n').filter((line) => line.includes('Login attempt for user: pm2-logs-history'));
  t.is(shown.length, 1, history);
  t.regex(shown[0] ?? '', /^\d+\|api +\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d - auth - INFO - Login attempt for user: pm2-logs-history$/);
  // On disk exactly once (one file for PM2's out and err, one writer per line).
  t.is(allBackendLines().filter((line) => expected.test(line)).length, 1);
  t.is(allBackendLines().filter((line) => line.includes('Login attempt for user: pm2-logs-live')).length, 1);
  // The forked backup app's lines reach the same file through the PM2 daemon.
  t.true(allBackendLines().some((line) => FORMAT.test(line) && / - backup - INFO - Backup schedule registered with PM2/.test(line)));
  // PM2's default files stay unused: nothing is written twice.
  t.deepEqual(
    readdirSync(path.join(sandbox.home, 'logs')).filter((name) => statSync(path.join(sandbox.home, 'logs', name)).size > 0),
    [],
  );
});

test.serial('the supervisor\'s lines are in supervisor.log once and in pm2 logs supervisor', async (t) => {
  const started = readLog('supervisor.log').filter((line) => /Supervisor started \(pid \d+\)/.test(line));
  t.is(started.length, 1, sandbox.supervisorLog());
  t.regex(started[0] ?? '', FORMAT);
  const lines = readLog('supervisor.log');
  t.is(new Set(lines).size, lines.length, 'no line twice');
  const shown = withoutColours(await sandbox.pm2('logs', 'supervisor', '--nostream', '--lines', '50'));
  t.regex(shown, /supervisor - INFO - Supervisor started \(pid \d+\)/);
});

const rotations = (): number => sandbox.supervisorLog().match(/Rotated backend\.log/g)?.length ?? 0;

/** Returns once no rotation has happened for 2.5 s (more than a check period). */
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

test.serial('the supervisor rotates backend.log; lines from both workers stay whole, in format, and none is lost', async (t) => {
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

  // A batch that lands with no rotation around it must be whole in the fresh file; a rotation
  // can still be due from the first batch's tail, so send again with fresh ids until one does.
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

  const files = backendFiles();
  t.true(files.includes('backend.log.1'), files.join(', '));
  t.true(files.length <= 10, `at most LOG_BACKUPS old files: ${files.join(', ')}`);
  const lines = allBackendLines();
  t.deepEqual(lines.filter((l) => !FORMAT.test(l) && !STACK_LINE.test(l)), [], 'every line is whole and in the format');
  const ids = (text: string[]): string[] => text.flatMap((l) => /Request (rot-\d+) /.exec(l)?.[1] ?? []);
  const everywhere = ids(lines);
  const missing = Array.from({ length: sent }, (_, i) => `rot-${i}`).filter((id) => !everywhere.includes(id));
  t.deepEqual(missing, [], 'no line is lost across the rotation');
  t.is(everywhere.length, new Set(everywhere).size, 'no line is written twice');
  // Both workers reopened: every line written after the rotation is in the new file.
  const current = new Set(ids(readLog('backend.log')));
  t.deepEqual(Array.from({ length: 60 }, (_, i) => `rot-${batchStart + i}`).filter((id) => !current.has(id)), []);
  // What PM2 itself prints into a worker on `reloadLogs` is kept in the format too.
  t.true(lines.some((line) => / - stdout - INFO - Reloading log\.\.\.$/.test(line)), 'PM2\'s reload note, in format');
});

test.serial('supervisor.log and PM2\'s own pm2.log are rotated and stay bounded', async (t) => {
  // Filler in the log's format standing for months of lines, past LOG_MAX_BYTES in each file.
  const filler = `${'2026-01-01 00:00:00 - supervisor - INFO - filler line for the rotation test'.padEnd(200, '.')}\n`.repeat(
    Math.ceil((LOG_MAX_BYTES * 1.5) / 200),
  );
  const pm2Log = path.join(sandbox.home, 'pm2.log');
  appendFileSync(path.join(sandbox.logDir, 'supervisor.log'), filler);
  appendFileSync(pm2Log, filler);

  await waitFor('pm2.log to be rotated', () => statSync(pm2Log).size < LOG_MAX_BYTES, 15_000, 200);
  t.true(statSync(`${pm2Log}.1`).size >= LOG_MAX_BYTES, 'the old content is kept in pm2.log.1');
  await waitFor(
    'supervisor.log to be rotated',
    () => readdirSync(sandbox.logDir).includes('supervisor.log.1') && /Rotated supervisor\.log/.test(sandbox.supervisorLog()),
    15_000,
    200,
  );
  // The supervisor's note of it went to the fresh file, which PM2 reopened.
  t.true(statSync(path.join(sandbox.logDir, 'supervisor.log')).size < LOG_MAX_BYTES);
  t.regex(readLog('supervisor.log').join('\n'), /supervisor - INFO - Rotated supervisor\.log/);
  t.notRegex(readLog('supervisor.log.1').join('\n'), /Rotated supervisor\.log/);
});

test.serial('the FATAL line a worker writes right before it exits is in backend.log once, with its stack', async (t) => {
  const before = allBackendLines().filter((line) => / - FATAL - Uncaught exception/.test(line)).length;
  t.is((await sandbox.request('/__fault/crash', { method: 'POST' })).status, 202);
  await waitFor('the FATAL line', () => allBackendLines().filter((line) => / - FATAL - Uncaught exception/.test(line)).length > before, 15_000);
  await waitFor('the crashed worker to be back', async () => (await sandbox.workers()).every((w) => w.pm2_env.status === 'online'), 30_000, 200);
  const lines = allBackendLines();
  const fatal = lines.filter((line) => / - FATAL - Uncaught exception/.test(line));
  t.is(fatal.length, before + 1, fatal.join('\n'));
  // Its stack follows it, once: PM2's own raw printing of the exception is not in the file.
  const index = lines.lastIndexOf(fatal[fatal.length - 1] ?? '');
  t.regex(lines.slice(index + 1, index + 3).join('\n'), /Injected crash outside a request[\s\S]*\s+at /);
  t.is(lines.filter((line) => /^Error: Injected crash outside a request/.test(line)).length, 1);
  t.deepEqual(lines.filter((l) => !FORMAT.test(l) && !STACK_LINE.test(l)), [], 'every line is whole and in the format');
});
