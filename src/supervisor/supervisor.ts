// Watches PM2's bus and enforces the restart policy (docs/operations.md) where PM2's options cannot:
// - every exit and restart is written to supervisor.log with time, app, worker, exit code or
//   signal, uptime and restart count;
// - a deliberate clean exit (the app says so on IPC before exiting 0) is not restarted: the
//   supervisor stops the worker during PM2's restart delay, which cancels the pending restart;
// - a signal death (which PM2 records as code 0 too) is restarted like any crash;
// - past CRASH_LOOP_MAX_RESTARTS consecutive runs shorter than CRASH_LOOP_WINDOW_MS the app is
//   stopped for good, reported as CRITICAL and alerted;
// - a worker that exits with code 78 (a bad configuration, which no restart heals) is stopped
//   at once, and the app reported with one CRITICAL line naming the bad variables and an alert;
// - a worker killed for a stuck event loop (workerChecks.ts) is logged as such and counts
//   toward the crash loop.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertSender } from '../platform/alerts';
import { BAD_CONFIGURATION_MESSAGE_TYPE, EXIT_BAD_CONFIGURATION } from '../platform/badConfiguration';
import { CLEAN_EXIT_MESSAGE } from '../platform/lifecycle';
import type { Logger } from '../platform/logging/logger';
import { CrashLoopDetector } from './crashLoop';
import type { SupervisorConfig } from './config';
import { lastErrorLines, readTail } from './logFiles';
import type { SupervisorMetrics } from './metrics';
import type { Bus, BusPacket, Pm2Process } from '../platform/pm2/pm2';

/** What the supervisor needs from PM2, so tests can stand in for it. */
export interface Pm2Control {
  stop(target: string | number): Promise<void>;
  /** The signal that killed the worker, which PM2 keeps only in its own log (readExitSignal). */
  exitSignal(app: string, worker: number | string, runStartedAt?: number): Promise<string | undefined>;
}

/** The time, and timers, as the supervisor reads them: tests stand in a clock they move. */
export interface Clock {
  now(): number;
  /** Runs `run` after `ms`, without keeping the process alive. */
  later(ms: number, run: () => void): void;
}

export const systemClock: Readonly<Clock> = {
  now: () => Date.now(),
  later: (ms, run) => void setTimeout(run, ms).unref(),
};

/** The lines the supervisor writes (supervisor.log). */
export type SupervisorLog = Pick<Logger, 'info' | 'warn' | 'error' | 'fatal'>;

/** A clean-exit or bad-configuration message counts for the exit that follows within this time. */
const CLEAN_EXIT_VALIDITY_MS = 30_000;

/** The same bad configuration of an app within this time is the same incident: one CRITICAL line. */
const BAD_CONFIG_REPORT_WINDOW_MS = 10 * 60 * 1000;
/**
 * How long the apps that one bad environment fails are gathered into one report. At `pm2 start`
 * the backup job fails within a moment, api workers only once they have loaded: 1.5 s was too
 * short on a busy machine (the api then got an ERROR line of its own instead of the CRITICAL one).
 */
export const BAD_CONFIG_GATHER_MS = 5000;

/** Bound on the bad variables' text in a log line or an alert. */
const MAX_PROBLEMS_CHARS = 2000;

export class Supervisor {
  private readonly detector: CrashLoopDetector;
  /** Workers that announced a clean exit, by "app#worker", with the time of the message. */
  private readonly cleanExits = new Map<string, number>();
  /** Apps this supervisor stopped; their exits and PM2's echo events are not crashes. */
  private readonly stoppedByUs = new Set<string>();
  /** Workers this supervisor stopped after a clean exit: PM2 echoes one more exit for each. */
  private readonly stoppingWorkers = new Set<string>();
  /** The pid of each worker's current run, by "app#worker" (PM2's events carry none). */
  private readonly pids = new Map<string, number>();
  /** Runs whose exit was handled: PM2 reports some exits (reloaded workers) twice. */
  private readonly handledRuns = new Set<string>();
  /** What each worker said was wrong with its configuration, by "app#worker", with the time. */
  private readonly badConfigMessages = new Map<string, { problems: string[]; at: number }>();
  /** Apps reported for a bad configuration: the problems and when; one CRITICAL line per bad start. */
  private readonly badConfigReported = new Map<string, { problems: string; at: number }>();
  /** Workers killed for a stuck event loop, by "app#worker": the pid and why. */
  private readonly stuckKills = new Map<string, { pid: number; reason: string }>();
  /** Workers stopped by us after an exit 78 (they have no process left, so no exit echoes it). */
  private readonly badConfigStops = new Set<string>();
  /** Reports of a bad configuration being gathered (by its problems) before the one CRITICAL line. */
  private readonly badConfigPending = new Map<string, { apps: Map<string, boolean> }>();
  /** Workers whose exit 78 is being handled right now. */
  private readonly badConfigInFlight = new Set<string>();
  /** Workers reloaded by us for memory, by "app#worker", with the time: PM2's reload event is ours. */
  private readonly memoryReloads = new Map<string, number>();
  /** After the first look at PM2's list, stopped one-shot apps are old news. */
  private reconciledOnce = false;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly pm2: Pm2Control,
    private readonly log: SupervisorLog,
    private readonly alerts: Pick<AlertSender, 'send'>,
    private readonly metrics: SupervisorMetrics,
    private readonly clock: Clock = systemClock,
  ) {
    this.detector = new CrashLoopDetector({ maxRestarts: config.maxRestarts, stableWindowMs: config.stableWindowMs });
  }

  attach(bus: Bus): void {
    bus.on('process:event', (packet) => {
      this.handleProcessEvent(packet).catch((error: unknown) => this.log.error('Supervisor failed to handle an event', error));
    });
    bus.on(CLEAN_EXIT_MESSAGE.type, (packet) => {
      this.cleanExits.set(workerKey(packet.process.name, packet.process.pm_id), this.clock.now());
    });
    bus.on(BAD_CONFIGURATION_MESSAGE_TYPE, (packet) => {
      const problems = problemsOf(packet.data);
      if (problems.length > 0) {
        this.badConfigMessages.set(workerKey(packet.process.name, packet.process.pm_id), { problems, at: this.clock.now() });
      }
    });
  }

  /** workerChecks.ts killed this worker for a stuck event loop: its exit is not a mystery. */
  noteStuckKill(app: string, worker: number, pid: number, reason: string): void {
    this.stuckKills.set(workerKey(app, worker), { pid, reason });
  }

  /** workerChecks.ts reloads this worker for memory: the reload event that follows is not an operator's. */
  noteMemoryReload(app: string, worker: number): void {
    this.memoryReloads.set(workerKey(app, worker), this.clock.now());
  }

  /**
   * PM2's view, every tick: an exit 78 the bus did not show us (the api failed before this
   * supervisor connected, at `pm2 start`) is reported and stopped all the same. With
   * stop_exit_codes PM2 never restarts it, but shows it `waiting restart`.
   */
  async reconcile(processes: readonly Pm2Process[]): Promise<void> {
    for (const proc of processes) {
      // @types/pm2 lacks these fields of pm2_env, and has no 'waiting restart' status.
      const env = proc.pm2_env as { status?: string; exit_code?: number; autorestart?: boolean } | undefined;
      const name = proc.name ?? '';
      if (env?.exit_code !== EXIT_BAD_CONFIGURATION || name === this.config.ownName) continue;
      // One-shot apps end `stopped` by themselves; an exit 78 of theirs is reported once per supervisor.
      if (env.status === 'waiting restart' || (env.status === 'stopped' && env.autorestart === false && !this.reconciledOnce)) {
        await this.stopForBadConfiguration(name, proc.pm_id ?? '?', 'list', env.autorestart === false);
      }
    }
    this.reconciledOnce = true;
  }

  /** A watcher that connects late sees no `online` events: note what is already running. */
  describeRunning(processes: readonly Pm2Process[]): void {
    for (const proc of processes) {
      const env = proc.pm2_env;
      this.log.info(
        `Watching ${proc.name} worker ${proc.pm_id}: ${env?.status ?? 'unknown'} (pid ${proc.pid ?? 0}, ` +
          `${env?.restart_time ?? 0} restarts so far)`,
      );
    }
  }

  /** One `process:event` of PM2's bus (exit, online, an operator's action); resolves once it is handled. */
  async handleProcessEvent(packet: BusPacket): Promise<void> {
    const proc = packet.process;
    const label = `${proc.name} worker ${proc.pm_id}`;
    switch (packet.event) {
      case 'exit':
        await this.onExit(packet);
        return;
      case 'online': {
        // An app started after this supervisor (or in the same `pm2 start`) gets its series at 0 too.
        if (proc.name !== this.config.ownName) {
          this.metrics.startCounting([proc.name], isOneShot(proc) ? [proc.name] : []);
        }
        this.stoppingWorkers.delete(workerKey(proc.name, proc.pm_id));
        this.badConfigStops.delete(workerKey(proc.name, proc.pm_id));
        const pid = await readPid(proc['pm_pid_path']);
        if (pid !== undefined) this.pids.set(workerKey(proc.name, proc.pm_id), pid);
        const shown = pid ?? '?';
        if ((proc.restart_time ?? 0) > 0) {
          this.log.info(`${label} is back online (pid ${shown}), restart #${proc.restart_time}`);
        } else {
          this.log.info(`${label} started (pid ${shown})`);
        }
        return;
      }
      case 'restart overlimit':
        // PM2's own limiter tripped (it is set out of the way, so this means the supervisor was down).
        await this.declareCrashLoop(proc.name, proc.pm_id, proc.unstable_restarts ?? 0, 'PM2 restart limit reached');
        return;
      case 'start':
      case 'restart':
      case 'reload':
      case 'stop':
      case 'delete':
        if (packet.event === 'reload' && this.isOurReload(proc.name, proc.pm_id)) return;
        // Operator actions: a fresh start clears the history of a crash loop.
        if (packet.event !== 'stop') {
          this.stoppedByUs.delete(proc.name);
          this.detector.reset(proc.name);
        }
        if (packet.event === 'stop' && this.isOurStop(proc.name, proc.pm_id)) return;
        this.log.info(`${label}: ${packet.event} requested by an operator`);
        return;
      default:
        return;
    }
  }

  private async onExit(packet: BusPacket): Promise<void> {
    const proc = packet.process;
    const key = workerKey(proc.name, proc.pm_id);
    // The echo of our own stop after a clean exit: already reported. The key stays for the
    // `stop` event PM2 sends after this echo (isOurStop), or until the worker is online again.
    if (this.stoppingWorkers.has(key)) return;
    const run = `${key}@${proc.pm_uptime ?? 0}`;
    if (this.handledRuns.has(run)) return;
    this.handledRuns.add(run);
    if (this.handledRuns.size > 1000) this.handledRuns.delete(this.handledRuns.values().next().value ?? '');
    const at = packet.at ?? this.clock.now();
    const uptimeMs = proc.pm_uptime ? Math.max(0, at - proc.pm_uptime) : 0;
    const code = proc.exit_code ?? 0;
    const uptime = `${(uptimeMs / 1000).toFixed(1)} s`;
    const announcedAt = this.cleanExits.get(key);
    this.cleanExits.delete(key);
    const pid = this.pids.get(key);
    this.pids.delete(key);
    const label = `${proc.name} worker ${proc.pm_id}${pid === undefined ? '' : ` (pid ${pid})`}`;

    const stuck = this.stuckKills.get(key);
    this.stuckKills.delete(key);

    if (code === EXIT_BAD_CONFIGURATION && proc.name !== this.config.ownName) {
      await this.stopForBadConfiguration(proc.name, proc.pm_id, 'exit', isOneShot(proc));
      return;
    }
    // Stopped on purpose (by an operator, by PM2, or by us): not a crash.
    if (proc.status === 'stopping' || this.stoppedByUs.has(proc.name) || String(proc.pm_id).startsWith('_old_')) {
      this.log.info(`${label} exited with code ${code} after ${uptime} (stopped on purpose)`);
      this.metrics.countExit(proc.name, 'stopped');
      return;
    }
    if (isOneShot(proc)) {
      this.log.info(`${label} (a one-shot job) exited with code ${code} after ${uptime}`);
      // A failed backup run also shows here, even when it could not record itself in BACKUP_DIR.
      this.metrics.countExit(proc.name, code === 0 ? 'completed' : 'failed');
      return;
    }
    if (proc.name === this.config.ownName) {
      this.log.warn(`${label} (this supervisor) exited with code ${code} after ${uptime}; PM2 restarts it`);
      return;
    }
    if (code === 0 && announcedAt !== undefined && this.clock.now() - announcedAt < CLEAN_EXIT_VALIDITY_MS) {
      this.log.info(`${label} exited cleanly (code 0) after ${uptime}; not restarting it`);
      this.metrics.countExit(proc.name, 'clean');
      // Stopping it inside PM2's restart delay cancels the pending restart.
      this.stoppingWorkers.add(key);
      await this.stopQuietly(proc.pm_id, `${label} (clean exit)`);
      return;
    }

    const killedStuck = stuck !== undefined && (pid === undefined || stuck.pid === pid) && code === 0;
    const cause = killedStuck
      ? `SIGKILL from the supervisor (${stuck.reason})`
      : code !== 0
        ? `code ${code}`
        : `signal ${(await this.pm2.exitSignal(proc.name, proc.pm_id, proc.pm_uptime)) ?? 'unknown (PM2 reports exit code 0)'}`;
    const reason = killedStuck ? 'stuck' : code !== 0 ? 'crash' : 'signal';
    this.metrics.countExit(proc.name, reason);
    const verdict = this.detector.recordCrash(proc.name, proc.pm_id, uptimeMs);
    const restarts = proc.restart_time ?? 0;
    if (verdict.tripped) {
      await this.declareCrashLoop(proc.name, proc.pm_id, verdict.count - 1, `last exit: ${cause} after ${uptime}`);
      return;
    }
    const policy = this.detector.policy;
    this.metrics.countRestart(proc.name, reason);
    const counted = verdict.count === 0
      ? `a stable run, crash-loop count reset`
      : `short run ${verdict.count} of ${policy.maxRestarts} allowed`;
    this.log.warn(
      `${label} exited with ${cause} after ${uptime} uptime; restarting (restart #${restarts + 1}, ${counted})`,
    );
  }

  /**
   * A bad configuration: no restart can fix it, so the worker is stopped now (with
   * stop_exit_codes PM2 does not restart it, but would show it `waiting restart` for ever), and
   * the app is reported once, with the bad variables, as CRITICAL and as an alert.
   */
  private async stopForBadConfiguration(
    app: string,
    worker: number | string,
    seenIn: 'exit' | 'list',
    oneShot: boolean,
  ): Promise<void> {
    const key = workerKey(app, worker);
    // The bus and PM2's list may both bring the same exit at once: handle it once.
    if (this.badConfigInFlight.has(key)) return;
    this.badConfigInFlight.add(key);
    try {
      await this.handleBadConfiguration(app, worker, key, seenIn, oneShot);
    } finally {
      this.badConfigInFlight.delete(key);
    }
  }

  private async handleBadConfiguration(
    app: string,
    worker: number | string,
    key: string,
    seenIn: 'exit' | 'list',
    oneShot: boolean,
  ): Promise<void> {
    const said = this.badConfigMessages.get(key);
    this.badConfigMessages.delete(key);
    if (seenIn === 'exit') this.metrics.countExit(app, 'bad_configuration');
    const problems =
      said !== undefined && this.clock.now() - said.at < CLEAN_EXIT_VALIDITY_MS
        ? said.problems.join('; ')
        : await this.lastConfigurationProblems();
    const bounded = problems.length > MAX_PROBLEMS_CHARS ? `${problems.slice(0, MAX_PROBLEMS_CHARS)}…` : problems;
    const now = this.clock.now();
    const recent = (report: { problems: string; at: number } | undefined): boolean =>
      report !== undefined && report.problems === bounded && now - report.at < BAD_CONFIG_REPORT_WINDOW_MS;
    const alreadyReported = recent(this.badConfigReported.get(app));
    const sameAs = [...this.badConfigReported].find(([other, report]) => other !== app && recent(report))?.[0];
    if (!alreadyReported) this.badConfigReported.set(app, { problems: bounded, at: now });
    // This worker is stopped, so PM2 shows `stopped` rather than `waiting restart` (a stop of a
    // stopped worker changes nothing). Not the whole app: siblings still starting fail on their
    // own a moment later (stopping them mid-start would make PM2 restart them), and siblings
    // that serve with the configuration they started with keep serving.
    this.badConfigStops.add(key);
    await this.stopQuietly(worker, `${app} worker ${worker}`);
    if (alreadyReported) {
      // The other workers of one bad start, or the rest of an operator's rolling restart.
      if (seenIn === 'exit') this.log.info(`${app} worker ${worker} exited with code ${EXIT_BAD_CONFIGURATION} (the same bad configuration, already reported)`);
      return;
    }
    // One bad environment fails every app that reads it, within a moment of each other: they are
    // gathered into one CRITICAL line and one alert.
    const pending = this.badConfigPending.get(bounded);
    if (pending) {
      pending.apps.set(app, oneShot);
      return;
    }
    if (sameAs !== undefined) {
      this.log.error(`${app} stopped: the same bad configuration as ${sameAs} (exit code ${EXIT_BAD_CONFIGURATION}): ${bounded}`);
      return;
    }
    const gathering = { apps: new Map<string, boolean>([[app, oneShot]]) };
    this.badConfigPending.set(bounded, gathering);
    this.clock.later(BAD_CONFIG_GATHER_MS, () => {
      this.badConfigPending.delete(bounded);
      this.reportBadConfiguration(gathering.apps, bounded);
    });
  }

  /** The one CRITICAL line and alert for the apps one bad configuration stopped; long-running apps first. */
  private reportBadConfiguration(apps: ReadonlyMap<string, boolean>, problems: string): void {
    const names = [...apps.keys()].sort((a, b) => Number(apps.get(a)) - Number(apps.get(b)));
    const services = names.filter((name) => apps.get(name) === false);
    const jobs = names.filter((name) => apps.get(name) === true);
    const consequence = [
      services.length > 0 ? `${services.join(', ')} ${services.length === 1 ? 'stays' : 'stay'} stopped until the environment is fixed and an operator starts ${services.length === 1 ? 'it' : 'them'} again` : '',
      jobs.length > 0 ? `the scheduled runs of ${jobs.join(', ')} fail the same way until it is fixed` : '',
    ].filter((part) => part !== '');
    const message =
      `${names.join(', ')} stopped: bad configuration (exit code ${EXIT_BAD_CONFIGURATION}); no restart can fix it: ` +
      `${problems}. ${consequence.join('; ')}.`;
    this.log.fatal(message);
    for (const name of names) this.metrics.countBadConfiguration(name);
    void this.alerts.send({
      level: 'CRITICAL',
      app: names[0] ?? 'unknown',
      event: 'bad_configuration',
      message,
      details: { apps: names, exitCode: EXIT_BAD_CONFIGURATION, problems },
    });
  }

  /** When the process could not tell us: its FATAL line in backend.log says what was wrong. */
  private async lastConfigurationProblems(): Promise<string> {
    const tail = await readTail(path.join(this.config.logDir, 'backend.log'), 64 * 1024);
    let found: string | undefined;
    for (const match of tail.matchAll(/ - FATAL - Invalid configuration: (.*)$/gm)) found = match[1];
    return found ?? 'the problems are not known (no "Invalid configuration" line in backend.log)';
  }

  private async declareCrashLoop(app: string, worker: number | string, restarts: number, detail: string): Promise<void> {
    if (this.stoppedByUs.has(app)) return;
    this.stoppedByUs.add(app);
    await this.stopQuietly(app, app);
    const windowSeconds = Math.round(this.config.stableWindowMs / 1000);
    const errors = await lastErrorLines(path.join(this.config.logDir, 'backend.log'), 3);
    const message =
      `${app} stopped: crash loop after ${restarts} restarts each shorter than ${windowSeconds} s ` +
      `(worker ${worker}; ${detail}). It stays stopped until an operator starts it again. ` +
      `Last errors: ${errors.length > 0 ? errors.join(' | ') : 'none in backend.log'}`;
    // FATAL is written as a line that begins with CRITICAL (see logger.ts's layout).
    this.log.fatal(message);
    this.metrics.countCrashLoop(app);
    void this.alerts.send({
      level: 'CRITICAL',
      app,
      event: 'crash_loop',
      message,
      details: { restarts, worker, lastErrors: errors },
    });
  }

  /** PM2 announces a reload when it is done: a reload we started within the last minute. */
  private isOurReload(app: string, worker: number | string): boolean {
    const key = workerKey(app, worker);
    const startedAt = this.memoryReloads.get(key);
    this.memoryReloads.delete(key);
    return startedAt !== undefined && this.clock.now() - startedAt < 60_000;
  }

  private isOurStop(app: string, worker: number | string): boolean {
    const key = workerKey(app, worker);
    return this.stoppedByUs.has(app) || this.stoppingWorkers.delete(key) || this.badConfigStops.delete(key);
  }

  private async stopQuietly(target: string | number, what: string): Promise<void> {
    try {
      await this.pm2.stop(target);
    } catch (error) {
      this.log.error(`Could not stop ${what}`, error);
    }
  }
}

/**
 * PM2's line for a death by signal: `App [api:0] exited with code [0] via signal [SIGKILL]`. A
 * constant pattern (the app is compared in code), and the name may not hold "[", so no run of
 * the log is scanned from two starts.
 */
const PM2_SIGNAL_EXIT = /App \[([^[\]\n]*)\] exited with code \[0\] via signal \[(\w+)\]/g;

/**
 * The signal that killed `app`'s worker `worker` in the run that started at `runStartedAt` (ms),
 * from PM2's own log (`pm2.log` in PM2_HOME), if it says. A line older than that run is an
 * earlier death of the same worker: never taken for this one. PM2 stamps its lines to the second
 * in local time (`YYYY-MM-DDTHH:mm:ss`); a line whose stamp cannot be read is taken as it is.
 */
export async function readExitSignal(
  pm2LogFile: string,
  app: string,
  worker: number | string,
  runStartedAt?: number,
): Promise<string | undefined> {
  const name = `${app}:${worker}`;
  const notBefore = runStartedAt === undefined ? -Infinity : Math.floor(runStartedAt / 1000) * 1000;
  const lastSignal = async (): Promise<string | undefined> => {
    const text = await readTail(pm2LogFile, 32 * 1024);
    let signal: string | undefined;
    for (const match of text.matchAll(PM2_SIGNAL_EXIT)) {
      if (match[1] !== name) continue;
      const lineStart = text.lastIndexOf('\n', match.index) + 1;
      const stamp = Date.parse(text.slice(lineStart, lineStart + 19));
      if (Number.isFinite(stamp) && stamp < notBefore) continue;
      signal = match[2];
    }
    return signal;
  };
  // PM2 writes the line just before it tells the bus: if it is not there yet, give the write a moment.
  return (await lastSignal()) ?? (await sleep(100).then(lastSignal));
}

/** The problems a bad-configuration message carries, as bounded strings. */
function problemsOf(data: unknown): string[] {
  const problems = (data as { problems?: unknown } | undefined)?.problems;
  if (!Array.isArray(problems)) return [];
  return problems.filter((item): item is string => typeof item === 'string').slice(0, 50).map((item) => item.slice(0, 500));
}

/** A one-shot job (the backup app): PM2 does not restart it, so its exits are runs, not crashes. */
function isOneShot(proc: BusPacket['process']): boolean {
  return proc['autorestart'] === false || proc['autorestart'] === 'false';
}

function workerKey(app: string, worker: number | string): string {
  return `${app}#${worker}`;
}

/** PM2 writes each worker's pid to a file; its events do not carry it. */
async function readPid(file: unknown): Promise<number | undefined> {
  if (typeof file !== 'string') return undefined;
  const pid = Number((await readTail(file, 32)).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
