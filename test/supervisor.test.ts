// The supervisor's decisions in-process, with stand-ins for PM2, the clock, the log and the
// webhook: which exits are restarted, counted, stopped or reported, and what supervisor.log and
// the metrics say about each. The user-visible promises (a real restart after the delay, a real
// crash loop stopped) are proven end to end once in test/pm2-*.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { Alert } from '../src/platform/alerts';
import { BAD_CONFIGURATION_MESSAGE_TYPE } from '../src/platform/badConfiguration';
import { CLEAN_EXIT_MESSAGE } from '../src/platform/lifecycle';
import { LIVENESS_PONG_TYPE } from '../src/platform/liveness';
import type { Bus, BusPacket, Pm2Process } from '../src/platform/pm2/pm2';
import type { SupervisorConfig } from '../src/supervisor/config';
import { CrashLoopDetector } from '../src/supervisor/crashLoop';
import { SupervisorMetrics } from '../src/supervisor/metrics';
import { BAD_CONFIG_GATHER_MS, type Clock, type Pm2Control, readExitSignal, Supervisor, type SupervisorLog } from '../src/supervisor/supervisor';
import { WorkerChecks, type WorkerControl } from '../src/supervisor/workerChecks';

const MIB = 1024 * 1024;

/** Time that moves only when the test says; timers fire as it passes them. */
class FakeClock implements Clock {
  private time = Date.UTC(2026, 0, 1);
  private timers: Array<{ at: number; run: () => void }> = [];

  now(): number {
    return this.time;
  }

  later(ms: number, run: () => void): void {
    this.timers.push({ at: this.time + ms, run });
  }

  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((timer) => timer.at <= this.time);
    this.timers = this.timers.filter((timer) => timer.at > this.time);
    for (const timer of due) timer.run();
  }
}

/** PM2's bus: the test emits what PM2 would. */
class FakeBus implements Bus {
  private readonly listeners = new Map<string, Array<(packet: BusPacket) => void>>();

  on(event: string, listener: (packet: BusPacket) => void): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
  }

  emit(event: string, packet: BusPacket): void {
    for (const listener of this.listeners.get(event) ?? []) listener(packet);
  }
}

/** PM2 as the supervisor drives it: records every stop; a signal death's signal is what the test says. */
class FakePm2 implements Pm2Control {
  readonly stops: Array<string | number> = [];
  signal: string | undefined;

  async stop(target: string | number): Promise<void> {
    this.stops.push(target);
  }

  async exitSignal(): Promise<string | undefined> {
    return this.signal;
  }
}

interface Line {
  readonly level: 'INFO' | 'WARN' | 'ERROR' | 'CRITICAL';
  readonly text: string;
}

class RecordingLog implements SupervisorLog {
  readonly lines: Line[] = [];
  info = (message: unknown): void => void this.lines.push({ level: 'INFO', text: String(message) });
  warn = (message: unknown): void => void this.lines.push({ level: 'WARN', text: String(message) });
  error = (message: unknown): void => void this.lines.push({ level: 'ERROR', text: String(message) });
  // logger.ts writes FATAL as a line that begins with CRITICAL.
  fatal = (message: unknown): void => void this.lines.push({ level: 'CRITICAL', text: String(message) });

  matching(pattern: RegExp): Line[] {
    return this.lines.filter((line) => pattern.test(line.text));
  }

  critical(): string[] {
    return this.lines.filter((line) => line.level === 'CRITICAL').map((line) => line.text);
  }
}

function configWith(logDir: string, overrides: Partial<SupervisorConfig> = {}): SupervisorConfig {
  return {
    logDir,
    logMaxBytes: 10 * MIB,
    logBackups: 5,
    logRotateCheckMs: 10_000,
    alertWebhookUrl: undefined,
    alertTimeoutMs: 5000,
    serviceUrl: undefined,
    probeProblems: [],
    apiName: 'api',
    stuckWorkerTimeoutMs: 3000,
    livenessIntervalMs: 1000,
    apiMaxMemoryBytes: 0,
    memoryReloadCooldownMs: 10 * 60 * 1000,
    healthIntervalMs: 5000,
    healthFailuresBeforeAlert: 2,
    maxRestarts: 3,
    stableWindowMs: 60_000,
    ownName: 'supervisor',
    metricsSocketDir: undefined,
    problems: [],
    ...overrides,
  };
}

interface ProcessFields {
  readonly name?: string;
  readonly worker?: number | string;
  readonly status?: string;
  readonly code?: number;
  readonly restarts?: number;
  /** How long the run lasted, up to the event. */
  readonly uptimeMs?: number;
  readonly oneShot?: boolean;
  readonly pidFile?: string;
}

/** The webhook as the supervisor calls it; by default it records each alert and accepts it. */
type SendAlert = (alert: Alert) => Promise<boolean>;

function harness(configOverrides: Partial<SupervisorConfig> = {}, send?: SendAlert) {
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'ra-supervisor-'));
  const clock = new FakeClock();
  const bus = new FakeBus();
  const pm2 = new FakePm2();
  const log = new RecordingLog();
  const alerts: Alert[] = [];
  const metrics = new SupervisorMetrics();
  const config = configWith(logDir, configOverrides);
  const record: SendAlert = async (alert) => Boolean(alerts.push(alert));
  const supervisor = new Supervisor(config, pm2, log, { send: send ?? record }, metrics, clock);
  supervisor.attach(bus);

  /** The process part of a packet; a run's start is set apart from its end by uptimeMs (ms since its launch). */
  const processOf = (fields: ProcessFields): BusPacket['process'] => ({
    name: fields.name ?? 'api',
    pm_id: fields.worker ?? 0,
    status: fields.status ?? 'online',
    exit_code: fields.code ?? 0,
    restart_time: fields.restarts ?? 0,
    pm_uptime: clock.now() - (fields.uptimeMs ?? 500),
    autorestart: fields.oneShot !== true,
    ...(fields.pidFile === undefined ? {} : { pm_pid_path: fields.pidFile }),
  });
  const event = (name: string, fields: ProcessFields = {}): Promise<void> =>
    supervisor.handleProcessEvent({ event: name, at: clock.now(), process: processOf(fields) });
  /** A run ends: PM2's exit event, after the clock moved by the run's uptime. */
  const exit = async (fields: ProcessFields = {}): Promise<void> => {
    clock.advance(fields.uptimeMs ?? 500);
    await event('exit', fields);
  };
  const message = (type: string, fields: ProcessFields, data?: unknown): void =>
    bus.emit(type, { process: processOf(fields), data });
  /** The value of one series of the supervisor's metrics, as GET /metrics shows it. */
  const metric = async (name: string, labels: string): Promise<number | undefined> => {
    const text = await metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  return { logDir, clock, bus, pm2, log, alerts, metrics, config, supervisor, event, exit, message, metric, cleanup: () => rmSync(logDir, { recursive: true, force: true }) };
}

type Harness = ReturnType<typeof harness>;

function withHarness(overrides: Partial<SupervisorConfig>, t: { teardown: (fn: () => void) => void }, send?: SendAlert): Harness {
  const h = harness(overrides, send);
  t.teardown(h.cleanup);
  return h;
}

// ---- crashLoop.ts -------------------------------------------------------------------------

test('CrashLoopDetector: more than maxRestarts short runs trip it; each worker counts alone', (t) => {
  const detector = new CrashLoopDetector({ maxRestarts: 2, stableWindowMs: 1000 });
  t.deepEqual(detector.recordCrash('api', 0, 10), { count: 1, tripped: false });
  t.deepEqual(detector.recordCrash('api', 1, 10), { count: 1, tripped: false }, 'another worker has its own count');
  t.deepEqual(detector.recordCrash('api', 0, 999), { count: 2, tripped: false }, 'just under the window is short');
  t.deepEqual(detector.recordCrash('api', 0, 10), { count: 3, tripped: true });
});

test('CrashLoopDetector: a run as long as the window resets the count; reset() forgets one app only', (t) => {
  const detector = new CrashLoopDetector({ maxRestarts: 2, stableWindowMs: 1000 });
  detector.recordCrash('api', 0, 10);
  detector.recordCrash('api', 0, 10);
  t.deepEqual(detector.recordCrash('api', 0, 1000), { count: 0, tripped: false });
  t.deepEqual(detector.recordCrash('api', 0, 10), { count: 1, tripped: false });
  detector.recordCrash('other', 0, 10);
  detector.reset('api');
  t.deepEqual(detector.recordCrash('api', 0, 10), { count: 1, tripped: false }, 'api starts afresh');
  t.deepEqual(detector.recordCrash('other', 0, 10), { count: 2, tripped: false }, 'other is untouched');
});

// ---- restarts ------------------------------------------------------------------------------

test('a crash is left to PM2 to restart after its delay, logged with code, uptime and count, and counted', async (t) => {
  const h = withHarness({}, t);
  const pidFile = path.join(h.logDir, 'api-0.pid');
  writeFileSync(pidFile, '4242\n');
  await h.event('online', { pidFile });
  await h.exit({ code: 1, uptimeMs: 2500 });
  t.deepEqual(h.pm2.stops, [], 'nothing stopped: PM2 restarts it');
  t.deepEqual(
    h.log.matching(/exited/).map((line) => `${line.level} ${line.text}`),
    ['WARN api worker 0 (pid 4242) exited with code 1 after 2.5 s uptime; restarting (restart #1, short run 1 of 3 allowed)'],
  );
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="crash"'), 1);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="crash"'), 1);
  // PM2 brings it back: the new run is logged as such.
  await h.event('online', { restarts: 1 });
  t.is(h.log.lines.at(-1)?.text, 'api worker 0 is back online (pid ?), restart #1');
  t.deepEqual(h.alerts, []);
});

test('a death by signal (PM2 says code 0) is a crash too, named by its signal', async (t) => {
  const h = withHarness({}, t);
  h.pm2.signal = 'SIGKILL';
  await h.exit({ code: 0, uptimeMs: 1200 });
  t.deepEqual(h.pm2.stops, []);
  t.regex(h.log.lines.at(-1)?.text ?? '', /^api worker 0 exited with signal SIGKILL after 1\.2 s uptime; restarting \(restart #1, short run 1 of 3 allowed\)$/);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="signal"'), 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="signal"'), 1);
  // PM2's log did not say: still restarted, and the line says the signal is unknown.
  h.pm2.signal = undefined;
  await h.exit({ code: 0 });
  t.regex(h.log.lines.at(-1)?.text ?? '', /exited with signal unknown \(PM2 reports exit code 0\) .* short run 2 of 3 allowed/);
});

test('PM2 reporting one exit twice is handled once', async (t) => {
  const h = withHarness({}, t);
  await h.exit({ code: 1 });
  await h.event('exit', { code: 1, uptimeMs: 500 });
  t.is(h.log.matching(/exited/).length, 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="crash"'), 1);
});

test('a clean exit (announced, code 0) is not restarted: the worker is stopped within PM2 restart delay', async (t) => {
  const h = withHarness({}, t);
  h.message(CLEAN_EXIT_MESSAGE.type, {});
  await h.exit({ code: 0, uptimeMs: 10_000 });
  t.deepEqual(h.pm2.stops, [0], 'that worker is stopped, which cancels the pending restart');
  t.is(h.log.lines.at(-1)?.text, 'api worker 0 exited cleanly (code 0) after 10.0 s; not restarting it');
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="clean"'), 1);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="crash"'), undefined);
  // PM2 echoes our stop with one more exit, and a stop event: neither is news.
  const lines = h.log.lines.length;
  await h.event('exit', { code: 0, status: 'stopped', uptimeMs: 0 });
  await h.event('stop');
  t.is(h.log.lines.length, lines);
});

test('a clean-exit message too old to belong to this exit does not make a death clean', async (t) => {
  const h = withHarness({}, t);
  h.pm2.signal = 'SIGKILL';
  h.message(CLEAN_EXIT_MESSAGE.type, {});
  h.clock.advance(31_000);
  await h.exit({ code: 0 });
  t.deepEqual(h.pm2.stops, []);
  t.regex(h.log.lines.at(-1)?.text ?? '', /exited with signal SIGKILL .*; restarting/);
});

test('an operator stop, a one-shot job and the supervisor itself are not crashes', async (t) => {
  const h = withHarness({}, t);
  await h.event('stop');
  await h.exit({ code: 0, status: 'stopping' });
  await h.exit({ name: 'backup', code: 0, oneShot: true });
  await h.exit({ name: 'backup', code: 2, oneShot: true });
  await h.exit({ name: 'supervisor', code: 1 });
  t.deepEqual(h.pm2.stops, []);
  t.deepEqual(h.log.lines.map((line) => line.text), [
    'api worker 0: stop requested by an operator',
    'api worker 0 exited with code 0 after 0.5 s (stopped on purpose)',
    'backup worker 0 (a one-shot job) exited with code 0 after 0.5 s',
    'backup worker 0 (a one-shot job) exited with code 2 after 0.5 s',
    'supervisor worker 0 (this supervisor) exited with code 1 after 0.5 s; PM2 restarts it',
  ]);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="stopped"'), 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="backup",reason="completed"'), 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="backup",reason="failed"'), 1);
  t.is(await h.metric('resilient_api_crash_loops_total', 'app="supervisor"'), undefined);
});

test('an app coming online gets its series at 0, a one-shot job its failed runs too', async (t) => {
  const h = withHarness({}, t);
  await h.event('online', { name: 'api' });
  await h.event('online', { name: 'backup', oneShot: true });
  for (const reason of ['crash', 'signal', 'stuck', 'memory']) {
    t.is(await h.metric('resilient_api_restarts_total', `app="api",reason="${reason}"`), 0);
  }
  t.is(await h.metric('resilient_api_reloads_total', 'app="api",reason="memory"'), 0);
  t.is(await h.metric('resilient_api_crash_loops_total', 'app="api"'), 0);
  t.is(await h.metric('resilient_api_bad_configurations_total', 'app="api"'), 0);
  t.is(await h.metric('resilient_api_exits_total', 'app="backup",reason="failed"'), 0);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="failed"'), undefined);
});

// ---- crash loop ----------------------------------------------------------------------------

test('one short run more than allowed is a crash loop: the app is stopped, one CRITICAL line, one alert, counted', async (t) => {
  const h = withHarness({ maxRestarts: 3, stableWindowMs: 60_000 }, t);
  writeFileSync(
    path.join(h.logDir, 'backend.log'),
    '2026-01-01 00:00:00 - db - ERROR - Could not connect\n  at stack line\n2026-01-01 00:00:01 - lifecycle - FATAL - Uncaught exception: boom\n',
  );
  for (let run = 1; run <= 3; run++) await h.exit({ code: 1, restarts: run - 1, uptimeMs: 400 });
  t.deepEqual(h.pm2.stops, []);
  t.is(h.log.matching(/; restarting \(restart #\d, short run \d of 3 allowed\)$/).length, 3, 'every restart logged with its reason');

  await h.exit({ code: 1, restarts: 3, uptimeMs: 400 });
  t.deepEqual(h.pm2.stops, ['api'], 'the whole app is stopped');
  const critical = h.log.critical();
  t.is(critical.length, 1);
  t.is(
    critical[0],
    'api stopped: crash loop after 3 restarts each shorter than 60 s (worker 0; last exit: code 1 after 0.4 s). ' +
      'It stays stopped until an operator starts it again. ' +
      'Last errors: 2026-01-01 00:00:00 - db - ERROR - Could not connect | 2026-01-01 00:00:01 - lifecycle - FATAL - Uncaught exception: boom',
  );
  t.is(h.alerts.length, 1);
  t.like(h.alerts[0], { level: 'CRITICAL', app: 'api', event: 'crash_loop', details: { restarts: 3, worker: 0 } });
  t.is(await h.metric('resilient_api_crash_loops_total', 'app="api"'), 1);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="crash"'), 3, 'the stop is not a restart');
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="crash"'), 4);

  // Our stop's echoes, and another worker failing meanwhile, are not a second incident.
  await h.event('stop');
  await h.exit({ code: 1, worker: 1 });
  t.is(h.log.critical().length, 1);
  t.is(h.alerts.length, 1);
  t.deepEqual(h.pm2.stops, ['api']);
  t.notRegex(h.log.lines.at(-1)?.text ?? '', /restarting/);
});

test('an operator start after a crash loop counts afresh', async (t) => {
  const h = withHarness({ maxRestarts: 1 }, t);
  await h.exit({ code: 1 });
  await h.exit({ code: 1 });
  t.deepEqual(h.pm2.stops, ['api']);
  await h.event('restart');
  t.is(h.log.lines.at(-1)?.text, 'api worker 0: restart requested by an operator');
  await h.exit({ code: 1 });
  t.regex(h.log.lines.at(-1)?.text ?? '', /short run 1 of 1 allowed/);
  await h.exit({ code: 1 });
  t.deepEqual(h.pm2.stops, ['api', 'api']);
  t.is(h.log.critical().length, 2);
  t.is(await h.metric('resilient_api_crash_loops_total', 'app="api"'), 2);
});

test('a run as long as the stability window resets the count', async (t) => {
  const h = withHarness({ maxRestarts: 3, stableWindowMs: 10_000 }, t);
  for (let run = 0; run < 3; run++) await h.exit({ code: 1, uptimeMs: 9_999 });
  t.regex(h.log.lines.at(-1)?.text ?? '', /short run 3 of 3 allowed/);
  await h.exit({ code: 1, uptimeMs: 10_000 });
  t.regex(h.log.lines.at(-1)?.text ?? '', /after 10\.0 s uptime; restarting \(restart #1, a stable run, crash-loop count reset\)$/);
  for (let run = 0; run < 3; run++) await h.exit({ code: 1, uptimeMs: 100 });
  t.deepEqual(h.pm2.stops, [], 'three more short runs are allowed again');
  t.deepEqual(h.log.critical(), []);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="crash"'), 7);
});

test('a webhook that never answers holds nothing up: the app is stopped and the next exits handled', async (t) => {
  const h = withHarness({ maxRestarts: 1 }, t, () => new Promise<boolean>(() => undefined));
  await h.exit({ code: 1 });
  await h.exit({ code: 1 });
  t.deepEqual(h.pm2.stops, ['api']);
  t.is(h.log.critical().length, 1);
  await h.exit({ name: 'other', code: 1 });
  t.regex(h.log.lines.at(-1)?.text ?? '', /^other worker 0 exited with code 1 .*restarting/);
});

test('PM2 own restart limit tripping is reported as a crash loop', async (t) => {
  const h = withHarness({}, t);
  await h.supervisor.handleProcessEvent({ event: 'restart overlimit', process: { name: 'api', pm_id: 0, unstable_restarts: 15 } });
  t.deepEqual(h.pm2.stops, ['api']);
  t.regex(h.log.critical()[0] ?? '', /^api stopped: crash loop after 15 restarts .*PM2 restart limit reached/);
  t.is(h.alerts.length, 1);
});

// ---- bad configuration (exit 78) ----------------------------------------------------------

test('exit 78: the worker is stopped, never counted as a crash; one CRITICAL line and alert for one bad start', async (t) => {
  const h = withHarness({}, t);
  const problems = { problems: ['JWT_SECRET must be at least 32 characters (got 5)'] };
  h.message(BAD_CONFIGURATION_MESSAGE_TYPE, { worker: 0 }, problems);
  h.message(BAD_CONFIGURATION_MESSAGE_TYPE, { worker: 1 }, problems);
  h.message(BAD_CONFIGURATION_MESSAGE_TYPE, { name: 'backup', oneShot: true }, problems);
  await h.exit({ worker: 0, code: 78 });
  await h.exit({ name: 'backup', code: 78, oneShot: true });
  await h.exit({ worker: 1, code: 78 });
  t.deepEqual(h.pm2.stops, [0, 0, 1], 'each failed worker is stopped (PM2 would show it waiting restart)');
  t.deepEqual(h.log.critical(), [], 'the apps one bad environment fails are gathered first');
  h.clock.advance(BAD_CONFIG_GATHER_MS);
  t.deepEqual(h.log.critical(), [
    'api, backup stopped: bad configuration (exit code 78); no restart can fix it: JWT_SECRET must be at least 32 characters (got 5). ' +
      'api stays stopped until the environment is fixed and an operator starts it again; the scheduled runs of backup fail the same way until it is fixed.',
  ]);
  t.is(h.alerts.length, 1);
  t.like(h.alerts[0], { level: 'CRITICAL', app: 'api', event: 'bad_configuration', details: { apps: ['api', 'backup'], exitCode: 78 } });
  t.is(await h.metric('resilient_api_bad_configurations_total', 'app="api"'), 1);
  t.is(await h.metric('resilient_api_bad_configurations_total', 'app="backup"'), 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="bad_configuration"'), 2);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="crash"'), undefined);
  t.deepEqual(h.log.matching(/short run|restarting/), []);

  // The echo of our stop is not an operator's; the same bad start again within minutes is the same incident.
  await h.event('stop', { worker: 1 });
  t.deepEqual(h.log.matching(/requested by an operator/), []);
  h.message(BAD_CONFIGURATION_MESSAGE_TYPE, { worker: 0 }, problems);
  await h.exit({ worker: 0, code: 78 });
  h.clock.advance(BAD_CONFIG_GATHER_MS);
  t.is(h.log.critical().length, 1);
  t.regex(h.log.lines.at(-1)?.text ?? '', /api worker 0 exited with code 78 \(the same bad configuration, already reported\)/);
  t.is(h.alerts.length, 1);
});

test('exit 78 without a message: the problems come from the FATAL line in backend.log', async (t) => {
  const h = withHarness({}, t);
  writeFileSync(path.join(h.logDir, 'backend.log'), '2026-01-01 00:00:00 - config - FATAL - Invalid configuration: PORT must be an integer\n');
  await h.exit({ code: 78 });
  h.clock.advance(BAD_CONFIG_GATHER_MS);
  t.regex(h.log.critical()[0] ?? '', /^api stopped: bad configuration \(exit code 78\); no restart can fix it: PORT must be an integer\. /);
});

test('exit 78 PM2 shows but the bus did not (before the supervisor connected) is stopped and reported from the list', async (t) => {
  const h = withHarness({}, t);
  const listed = [{ name: 'api', pm_id: 3, pm2_env: { status: 'waiting restart', exit_code: 78, autorestart: true } }] as unknown as Pm2Process[];
  await Promise.all([h.supervisor.reconcile(listed), h.supervisor.reconcile(listed)]);
  t.deepEqual(h.pm2.stops, [3], 'handled once though seen twice at once');
  h.clock.advance(BAD_CONFIG_GATHER_MS);
  t.is(h.log.critical().length, 1);
  t.is(await h.metric('resilient_api_bad_configurations_total', 'app="api"'), 1);
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="bad_configuration"'), undefined, 'an exit the bus did not show is not counted as one');
});

// ---- stuck workers and memory (workerChecks.ts deciding, the supervisor reporting) -------

function workerChecks(h: Harness, listed: () => Pm2Process[]) {
  const calls = { pings: [] as number[], kills: [] as number[], reloads: [] as number[] };
  const control: WorkerControl = {
    list: async () => listed(),
    sendData: async (pmId) => void calls.pings.push(pmId),
    reload: async (pmId) => void calls.reloads.push(pmId),
    kill: (pid) => void calls.kills.push(pid),
  };
  const logged: string[] = [];
  const record = (message: unknown): void => void logged.push(String(message));
  // Only these four levels are written by the checks; the rest of log4js's Logger is never called.
  const log = { info: record, warn: record, error: record } as unknown as import('../src/platform/logging/logger').Logger;
  const checks = new WorkerChecks(h.config, control, h.supervisor, log, h.metrics, h.clock);
  checks.attach(h.bus);
  return { checks, calls, logged };
}

const apiWorker = (pmId: number, pid: number, rssMb = 50): Pm2Process =>
  ({ name: 'api', pm_id: pmId, pid, monit: { memory: rssMb * MIB, cpu: 0 }, pm2_env: { status: 'online' } }) as unknown as Pm2Process;

test('a worker silent past the timeout is killed, and its exit is reported as stuck, counted toward the crash loop', async (t) => {
  const h = withHarness({ stuckWorkerTimeoutMs: 2000, livenessIntervalMs: 1000 }, t);
  const { checks, calls, logged } = workerChecks(h, () => [apiWorker(0, 100), apiWorker(1, 101)]);
  const pong = (pmId: number, pid: number): void => h.bus.emit(LIVENESS_PONG_TYPE, { process: { name: 'api', pm_id: pmId }, data: { pid } });
  await checks.tick();
  t.deepEqual(calls.pings, [0, 1]);
  for (let second = 1; second <= 2; second++) {
    h.clock.advance(1000);
    pong(1, 101); // worker 1 answers every ping; worker 0 never does
    await checks.tick();
  }
  t.deepEqual(calls.kills, [100], 'only the silent worker is killed');
  t.deepEqual(logged, ['api worker 0 (pid 100) has not answered for 2.0 s (event loop stuck); killing it (SIGKILL) for PM2 to restart']);

  await h.event('online', { worker: 0 });
  await h.exit({ worker: 0, code: 0 });
  t.regex(
    h.log.lines.at(-1)?.text ?? '',
    /^api worker 0 exited with SIGKILL from the supervisor \(event loop stuck, no answer for 2\.0 s\) after 0\.5 s uptime; restarting \(restart #1, short run 1 of 3 allowed\)$/,
  );
  t.is(await h.metric('resilient_api_exits_total', 'app="api",reason="stuck"'), 1);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="stuck"'), 1);
});

test('a supervisor held up itself judges no worker on its late tick', async (t) => {
  const h = withHarness({ stuckWorkerTimeoutMs: 2000, livenessIntervalMs: 1000 }, t);
  const { checks, calls } = workerChecks(h, () => [apiWorker(0, 100)]);
  await checks.tick();
  h.clock.advance(5000);
  await checks.tick();
  t.deepEqual(calls.kills, []);
});

test('a worker past the memory bound is reloaded once, then held for the cooldown; its reload is not an operator action', async (t) => {
  const h = withHarness({ apiMaxMemoryBytes: 100 * MIB, memoryReloadCooldownMs: 600_000 }, t);
  let rss = 150;
  const { checks, calls, logged } = workerChecks(h, () => [apiWorker(0, 100, 80), apiWorker(1, 101, rss)]);
  await checks.tick();
  t.deepEqual(calls.reloads, [1]);
  await h.event('reload', { worker: 1 });
  t.deepEqual(h.log.matching(/operator/), [], 'the supervisor knows its own reload');
  t.is(await h.metric('resilient_api_reloads_total', 'app="api",reason="memory"'), 1);
  t.is(await h.metric('resilient_api_restarts_total', 'app="api",reason="memory"'), 1);

  // Still past the bound after its reload: said once, not reloaded again within the cooldown.
  rss = 120;
  for (let tick = 0; tick < 3; tick++) {
    h.clock.advance(1000);
    await checks.tick();
  }
  t.deepEqual(calls.reloads, [1]);
  t.is(logged.filter((line) => /not reloading it again within 10 minutes/.test(line)).length, 1);
  h.clock.advance(600_000);
  await checks.tick();
  t.deepEqual(calls.reloads, [1, 1], 'after the cooldown, once more');
  t.regex(logged[0] ?? '', /^api worker 1 \(pid 101\) uses 150 MB \(RSS\), over API_MAX_MEMORY_MB=100; reloading it gracefully/);
});

// ---- wiring -------------------------------------------------------------------------------

test('exits on the bus reach the supervisor', async (t) => {
  const h = withHarness({}, t);
  h.bus.emit('process:event', { event: 'exit', at: h.clock.now(), process: { name: 'api', pm_id: 0, exit_code: 1, pm_uptime: h.clock.now() - 100 } });
  await new Promise<void>((resolve) => {
    const check = (): void => void (h.log.lines.length > 0 ? resolve() : setImmediate(check));
    check();
  });
  t.regex(h.log.lines[0]?.text ?? '', /exited with code 1 after 0\.1 s uptime; restarting/);
});

test('readExitSignal reads the last signal PM2 logged for that worker', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-pm2log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'pm2.log');
  writeFileSync(
    file,
    [
      '2026-01-01T00:00:00: PM2 log: App [api:0] exited with code [0] via signal [SIGTERM]',
      '2026-01-01T00:00:01: PM2 log: App [api:1] exited with code [0] via signal [SIGSEGV]',
      '2026-01-01T00:00:02: PM2 log: App [api:0] exited with code [0] via signal [SIGKILL]',
      '',
    ].join('\n'),
  );
  t.is(await readExitSignal(file, 'api', 0), 'SIGKILL');
  t.is(await readExitSignal(file, 'api', 1), 'SIGSEGV');
  t.is(await readExitSignal(path.join(dir, 'missing.log'), 'api', 0), undefined);
  // A worker whose run started after its last logged death: that line is an earlier death's.
  t.is(await readExitSignal(file, 'api', 0, new Date('2026-01-01T00:00:02').getTime()), 'SIGKILL');
  t.is(await readExitSignal(file, 'api', 0, new Date('2026-01-01T00:00:03').getTime()), undefined);
  t.is(await readExitSignal(file, 'api', 1, new Date('2026-01-01T00:00:02').getTime()), undefined);
});
