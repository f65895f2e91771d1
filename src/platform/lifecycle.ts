// The process's life: start-up, readiness, signals, uncaught errors, graceful drain, exit.
// This is the only place that ends the process.
//
//   starting ──markReady()──▶ ready ──SIGINT/SIGTERM/'shutdown'──▶ draining ──▶ exit 0
//        └──────────── uncaught exception (any state) ────────────▶ draining ──▶ exit 1
//
// While draining, /health and /readyz answer 503 "shutting_down", every other request is still
// served normally, and each response closes its connection. Cleanup steps run in the order they
// were registered, within SHUTDOWN_TIMEOUT_MS in all.
import { type Logger, logFatalSync, logSync, shutdownLogging } from './logging/logger';
import { withDeadline } from './util/async';
import { asError } from './util/errors';

export type LifeState = 'starting' | 'ready' | 'draining';

interface CleanupStep {
  readonly name: string;
  readonly run: () => Promise<void>;
}

/** Tells the supervisor that an exit with code 0 was meant, not a signal death that looks like 0. */
export const CLEAN_EXIT_MESSAGE = { type: 'app:clean-exit', data: {} } as const;

/** A repeated stop signal within this time is the same request relayed twice, not "hurry up". */
const REPEAT_SIGNAL_GRACE_MS = 2000;

/** After an uncaught exception the process is in an unknown state: drain briefly, then go. */
const CRASH_DRAIN_LIMIT_MS = 3000;

export class Lifecycle {
  private current: LifeState = 'starting';
  private readonly steps: CleanupStep[] = [];
  private exiting: Promise<void> | undefined;
  /** When the drain began and the code it will exit with: a crash's drain stays a crash. */
  private drain: { readonly startedAt: number; readonly exitCode: number } | undefined;

  constructor(
    private readonly log: Logger,
    private readonly shutdownTimeoutMs: number,
  ) {}

  get state(): LifeState {
    return this.current;
  }

  get draining(): boolean {
    return this.current === 'draining';
  }

  /** Registers a cleanup step; steps run in registration order when the process stops. */
  onShutdown(name: string, run: () => Promise<void>): void {
    this.steps.push({ name, run });
  }

  install(): void {
    process.on('SIGINT', () => this.onStopRequest('SIGINT'));
    process.on('SIGTERM', () => this.onStopRequest('SIGTERM'));
    // PM2 sends this message instead of a signal when shutdown_with_message is set (and on Windows).
    process.on('message', (message) => {
      if (message === 'shutdown') this.onStopRequest('shutdown message');
    });
    process.on('uncaughtException', (error, origin) => {
      logFatalSync('lifecycle', `Uncaught exception (${origin}); draining and exiting with code 1`, error);
      void this.shutdown('uncaught exception', 1);
    });
    // PM2's cluster container swallows these unless we listen: log, and keep serving.
    process.on('unhandledRejection', (reason) => {
      this.log.error('Unhandled promise rejection (the process keeps running)', asError(reason));
    });
  }

  /** Listening and migrated: tell PM2 (wait_ready) that this worker may take traffic. */
  markReady(): void {
    if (this.current !== 'starting') return;
    this.current = 'ready';
    if (process.send && process.connected) process.send('ready');
  }

  /** Start-up could not finish: log synchronously (asynchronous output may be lost) and exit 1. */
  abortStartup(error: unknown): never {
    logFatalSync('lifecycle', 'Start-up failed', asError(error));
    process.exit(1);
  }

  /** For the fault-injection switch only: leave at once with the given code. */
  exitNow(code: number): void {
    logFatalSync('lifecycle', `Exiting at once with code ${code} (fault injection)`);
    this.finish(code);
  }

  shutdown(reason: string, exitCode: number): Promise<void> {
    if (!this.exiting) {
      this.drain = { startedAt: Date.now(), exitCode };
      this.exiting = this.drainAndExit(reason, exitCode);
    }
    return this.exiting;
  }

  private onStopRequest(source: string): void {
    if (this.drain) {
      // npm and tsx relay a terminal's Ctrl+C, so one press may arrive twice in a moment.
      if (Date.now() - this.drain.startedAt < REPEAT_SIGNAL_GRACE_MS) return;
      logSync('lifecycle', 'WARN', `${source} received again while draining; exiting now`);
      this.finish(this.drain.exitCode);
      return;
    }
    this.log.info(`${source} received; draining`);
    void this.shutdown(source, 0);
  }

  private async drainAndExit(reason: string, exitCode: number): Promise<void> {
    this.current = 'draining';
    const limit = exitCode === 0 ? this.shutdownTimeoutMs : Math.min(this.shutdownTimeoutMs, CRASH_DRAIN_LIMIT_MS);
    const deadline = Date.now() + limit;
    const started = Date.now();
    this.log.info(`Shutting down (${reason}); up to ${limit} ms to finish in-flight work`);
    for (const step of this.steps) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        this.log.warn(`Shutdown time is up; skipping "${step.name}"`);
        continue;
      }
      try {
        await withDeadline(step.run(), remaining);
      } catch (error) {
        this.log.warn(`Shutdown step "${step.name}" did not finish cleanly`, asError(error));
      }
    }
    this.log.info(`Shutdown complete in ${Date.now() - started} ms; exiting with code ${exitCode}`);
    await withDeadline(shutdownLogging(), 1000).catch(() => undefined);
    this.finish(exitCode);
  }

  private finish(exitCode: number): void {
    if (exitCode !== 0 || !process.send || !process.connected) process.exit(exitCode);
    // Exit once the message has left, or soon regardless: IPC is asynchronous.
    const fallback = setTimeout(() => process.exit(0), 500);
    process.send(CLEAN_EXIT_MESSAGE, undefined, {}, () => {
      clearTimeout(fallback);
      process.exit(0);
    });
  }
}
