// What the supervisor sees on PM2's bus, as metrics. The supervisor serves them on its own socket
// in the metrics folder (platform/metrics/cluster.ts), so any api worker's GET /metrics includes them.
// Counted since the supervisor started.
import { Counter, Registry } from 'prom-client';

/** Why a worker was replaced by a new process (a crash loop is not one: that app is stopped, see crash loops). */
export type RestartReason = 'crash' | 'signal' | 'stuck' | 'memory';
const RESTART_REASONS: readonly RestartReason[] = ['crash', 'signal', 'stuck', 'memory'];

export type ExitReason = 'crash' | 'signal' | 'stuck' | 'bad_configuration' | 'clean' | 'stopped' | 'completed' | 'failed';

type ReloadReason = 'memory';

/** The supervisor's counters, in their own registry (no default process metrics: those describe the api workers, and the sums would mix). */
export class SupervisorMetrics {
  readonly registry = new Registry();

  private readonly restarts = new Counter<'app' | 'reason'>({
    name: 'resilient_api_restarts_total',
    help:
      'Workers replaced by a new process, as the supervisor saw them, by app and reason: crash (non-zero exit), signal, ' +
      'stuck (killed by the supervisor for a stuck event loop), memory (reloaded past API_MAX_MEMORY_MB)',
    labelNames: ['app', 'reason'],
    registers: [this.registry],
  });

  private readonly exits = new Counter<'app' | 'reason'>({
    name: 'resilient_api_exits_total',
    help:
      'Process exits by app and reason: crash (non-zero code), signal, stuck (killed by the supervisor for a stuck event loop), ' +
      'bad_configuration (exit code 78), clean (deliberate), stopped (by an operator or PM2), completed (one-shot job, exit 0), failed (one-shot job, non-zero exit)',
    labelNames: ['app', 'reason'],
    registers: [this.registry],
  });

  private readonly crashLoops = new Counter<'app'>({
    name: 'resilient_api_crash_loops_total',
    help: 'Apps stopped by the supervisor after a crash loop, by app',
    labelNames: ['app'],
    registers: [this.registry],
  });

  private readonly badConfigurations = new Counter<'app'>({
    name: 'resilient_api_bad_configurations_total',
    help: 'Apps stopped by the supervisor because they exited with code 78 (bad configuration), by app',
    labelNames: ['app'],
    registers: [this.registry],
  });

  private readonly reloads = new Counter<'app' | 'reason'>({
    name: 'resilient_api_reloads_total',
    help: 'Graceful reloads of one worker started by the supervisor, by app and reason: memory (RSS past API_MAX_MEMORY_MB)',
    labelNames: ['app', 'reason'],
    registers: [this.registry],
  });

  /** One restart of a worker of `app`: PM2 restarting it after an exit, or the supervisor reloading it. */
  countRestart(app: string, reason: RestartReason): void {
    this.restarts.inc({ app, reason });
  }

  /** One exit of a process of `app`, by why it happened. */
  countExit(app: string, reason: ExitReason): void {
    this.exits.inc({ app, reason });
  }

  /** `app` was stopped for a crash loop. */
  countCrashLoop(app: string): void {
    this.crashLoops.inc({ app });
  }

  /** `app` was stopped for a bad configuration (exit code 78). */
  countBadConfiguration(app: string): void {
    this.badConfigurations.inc({ app });
  }

  /** One reload of a worker started by the supervisor. */
  countReload(app: string, reason: ReloadReason): void {
    this.reloads.inc({ app, reason });
    // A reload replaces the worker too: restarts_total counts every replacement, whatever its cause.
    this.countRestart(app, reason);
  }

  /**
   * Series at 0 for the apps PM2 runs, so they exist (and rate() works) before the first event;
   * for one-shot apps (the backup job), their failed runs.
   */
  startCounting(apps: Iterable<string>, oneShotApps: Iterable<string> = []): void {
    for (const app of oneShotApps) this.exits.inc({ app, reason: 'failed' }, 0);
    for (const app of apps) {
      for (const reason of RESTART_REASONS) this.restarts.inc({ app, reason }, 0);
      this.reloads.inc({ app, reason: 'memory' }, 0);
      this.crashLoops.inc({ app }, 0);
      this.badConfigurations.inc({ app }, 0);
    }
  }
}
