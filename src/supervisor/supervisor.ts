// Watches PM2's bus and enforces the contract's restart policy where PM2's options cannot:
// - every exit and restart is written to supervisor.log with time, app, worker, exit code or
//   signal, uptime and restart count;
// - a deliberate clean exit (the app says so on IPC before exiting 0) is not restarted: the
//   supervisor stops the worker during PM2's restart delay, which cancels the pending restart;
// - a signal death (which PM2 records as code 0 too) is restarted like any crash;
// - past CRASH_LOOP_MAX_RESTARTS consecutive runs shorter than CRASH_LOOP_WINDOW_MS the app is
//   stopped for good, reported as CRITICAL and alerted.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlertSender } from '../alerts';
import { CLEAN_EXIT_MESSAGE } from '../lifecycle';
import type { Logger } from '../logger';
import { CrashLoopDetector } from './crashLoop';
import type { SupervisorConfig } from './config';
import { lastErrorLines, readTail } from './logFiles';
import { countExit, crashLoops, processRestarts } from './metrics';
import type { Bus, BusPacket, Pm2Process } from './pm2';

/** What the supervisor needs from PM2, so tests can stand in for it. */
export interface Pm2Control {
  stop(target: string | number): Promise<void>;
}

/** A clean-exit message counts for the exit that follows within this time. */
const CLEAN_EXIT_VALIDITY_MS = 30_000;

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

  constructor(
    private readonly config: SupervisorConfig,
    private readonly pm2: Pm2Control,
    private readonly log: Logger,
    private readonly alerts: AlertSender,
  ) {
    this.detector = new CrashLoopDetector({ maxRestarts: config.maxRestarts, stableWindowMs: config.stableWindowMs });
  }

  attach(bus: Bus): void {
    bus.on('process:event', (packet) => {
      this.onProcessEvent(packet).catch((error: unknown) => this.log.error('Supervisor failed to handle an event', error));
    });
    bus.on(CLEAN_EXIT_MESSAGE.type, (packet) => {
      this.cleanExits.set(workerKey(packet.process.name, packet.process.pm_id), Date.now());
    });
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

  private async onProcessEvent(packet: BusPacket): Promise<void> {
    const proc = packet.process;
    const label = `${proc.name} worker ${proc.pm_id}`;
    switch (packet.event) {
      case 'exit':
        await this.onExit(packet);
        return;
      case 'online': {
        this.stoppingWorkers.delete(workerKey(proc.name, proc.pm_id));
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
    // The echo of our own stop after a clean exit: already reported.
    if (this.stoppingWorkers.delete(key)) return;
    const run = `${key}@${proc.pm_uptime ?? 0}`;
    if (this.handledRuns.has(run)) return;
    this.handledRuns.add(run);
    if (this.handledRuns.size > 1000) this.handledRuns.delete(this.handledRuns.values().next().value ?? '');
    const at = packet.at ?? Date.now();
    const uptimeMs = proc.pm_uptime ? Math.max(0, at - proc.pm_uptime) : 0;
    const code = proc.exit_code ?? 0;
    const uptime = `${(uptimeMs / 1000).toFixed(1)} s`;
    const announcedAt = this.cleanExits.get(key);
    this.cleanExits.delete(key);
    const pid = this.pids.get(key);
    this.pids.delete(key);
    const label = `${proc.name} worker ${proc.pm_id}${pid === undefined ? '' : ` (pid ${pid})`}`;

    // Stopped on purpose (by an operator, by PM2, or by us): not a crash.
    if (proc.status === 'stopping' || this.stoppedByUs.has(proc.name) || String(proc.pm_id).startsWith('_old_')) {
      this.log.info(`${label} exited with code ${code} after ${uptime} (stopped on purpose)`);
      countExit(proc.name, 'stopped');
      return;
    }
    const oneShot = proc['autorestart'] === false || proc['autorestart'] === 'false';
    if (oneShot) {
      this.log.info(`${label} (a one-shot job) exited with code ${code} after ${uptime}`);
      countExit(proc.name, 'completed');
      return;
    }
    if (proc.name === this.config.ownName) {
      this.log.warn(`${label} (this supervisor) exited with code ${code} after ${uptime}; PM2 restarts it`);
      return;
    }
    if (code === 0 && announcedAt !== undefined && Date.now() - announcedAt < CLEAN_EXIT_VALIDITY_MS) {
      this.log.info(`${label} exited cleanly (code 0) after ${uptime}; not restarting it`);
      countExit(proc.name, 'clean');
      // Stopping it inside PM2's restart delay cancels the pending restart.
      this.stoppingWorkers.add(key);
      await this.stopQuietly(proc.pm_id, `${label} (clean exit)`);
      return;
    }

    const cause = code !== 0 ? `code ${code}` : `signal ${await this.signalOf(proc.name, proc.pm_id)}`;
    countExit(proc.name, code !== 0 ? 'crash' : 'signal');
    const verdict = this.detector.recordCrash(proc.name, proc.pm_id, uptimeMs);
    const restarts = proc.restart_time ?? 0;
    if (verdict.tripped) {
      await this.declareCrashLoop(proc.name, proc.pm_id, verdict.count - 1, `last exit: ${cause} after ${uptime}`);
      return;
    }
    const policy = this.detector.policy;
    processRestarts.inc({ app: proc.name });
    const counted = verdict.count === 0
      ? `a stable run, crash-loop count reset`
      : `short run ${verdict.count} of ${policy.maxRestarts} allowed`;
    this.log.warn(
      `${label} exited with ${cause} after ${uptime} uptime; restarting (restart #${restarts + 1}, ${counted})`,
    );
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
    crashLoops.inc({ app });
    void this.alerts.send({
      level: 'CRITICAL',
      app,
      event: 'crash_loop',
      message,
      details: { restarts, worker, lastErrors: errors },
    });
  }

  private isOurStop(app: string, worker: number | string): boolean {
    return this.stoppedByUs.has(app) || this.stoppingWorkers.has(workerKey(app, worker));
  }

  private async stopQuietly(target: string | number, what: string): Promise<void> {
    try {
      await this.pm2.stop(target);
    } catch (error) {
      this.log.error(`Could not stop ${what}`, error);
    }
  }

  /** PM2 keeps the signal of a death only in its own log; read it from there if we can. */
  private async signalOf(app: string, worker: number | string): Promise<string> {
    const home = process.env['PM2_HOME'];
    if (!home) return 'unknown (PM2 reports exit code 0)';
    // PM2 writes the line just before it tells the bus; give the write a moment.
    await sleep(100);
    const tail = await readTail(path.join(home, 'pm2.log'), 32 * 1024);
    const pattern = new RegExp(`App \\[${escape(app)}:${escape(String(worker))}\\] exited with code \\[0\\] via signal \\[(\\w+)\\]`, 'g');
    let signal: string | undefined;
    for (const match of tail.matchAll(pattern)) signal = match[1];
    return signal ?? 'unknown (PM2 reports exit code 0)';
  }
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

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
