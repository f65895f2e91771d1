// What the supervisor sees on PM2's bus, as metrics. The supervisor serves them on its own socket
// in the metrics folder (metrics/cluster.ts), so any api worker's GET /metrics includes them.
// Counted since the supervisor started.
import { Counter, Registry } from 'prom-client';

/** Why a worker was replaced by a new process (a crash loop is not one: that app is stopped, see crashLoops). */
export type RestartReason = 'crash' | 'signal' | 'stuck' | 'memory';
const RESTART_REASONS: readonly RestartReason[] = ['crash', 'signal', 'stuck', 'memory'];

const processRestarts = new Counter<'app' | 'reason'>({
  name: 'resilient_api_restarts_total',
  help:
    'Workers replaced by a new process, as the supervisor saw them, by app and reason: crash (non-zero exit), signal, ' +
    'stuck (killed by the supervisor for a stuck event loop), memory (reloaded past API_MAX_MEMORY_MB)',
  labelNames: ['app', 'reason'],
  registers: [],
});

/** One restart of a worker of `app`: PM2 restarting it after an exit, or the supervisor reloading it. */
export function countRestart(app: string, reason: RestartReason): void {
  processRestarts.inc({ app, reason });
}

type ExitReason = 'crash' | 'signal' | 'stuck' | 'bad_configuration' | 'clean' | 'stopped' | 'completed' | 'failed';

const processExits = new Counter<'app' | 'reason'>({
  name: 'resilient_api_exits_total',
  help:
    'Process exits by app and reason: crash (non-zero code), signal, stuck (killed by the supervisor for a stuck event loop), ' +
    'bad_configuration (exit code 78), clean (deliberate), stopped (by an operator or PM2), completed (one-shot job, exit 0), failed (one-shot job, non-zero exit)',
  labelNames: ['app', 'reason'],
  registers: [],
});

/** One exit of a process of `app`, by why it happened. */
export function countExit(app: string, reason: ExitReason): void {
  processExits.inc({ app, reason });
}

export const crashLoops = new Counter<'app'>({
  name: 'resilient_api_crash_loops_total',
  help: 'Apps stopped by the supervisor after a crash loop, by app',
  labelNames: ['app'],
  registers: [],
});

export const badConfigurations = new Counter<'app'>({
  name: 'resilient_api_bad_configurations_total',
  help: 'Apps stopped by the supervisor because they exited with code 78 (bad configuration), by app',
  labelNames: ['app'],
  registers: [],
});

type ReloadReason = 'memory';

const processReloads = new Counter<'app' | 'reason'>({
  name: 'resilient_api_reloads_total',
  help: 'Graceful reloads of one worker started by the supervisor, by app and reason: memory (RSS past API_MAX_MEMORY_MB)',
  labelNames: ['app', 'reason'],
  registers: [],
});

/** One reload of a worker started by the supervisor. */
export function countReload(app: string, reason: ReloadReason): void {
  processReloads.inc({ app, reason });
  // A reload replaces the worker too: restarts_total counts every replacement, whatever its cause.
  countRestart(app, reason);
}

/**
 * Series at 0 for the apps PM2 runs, so they exist (and rate() works) before the first event;
 * for one-shot apps (the backup job), their failed runs.
 */
export function startCounting(apps: Iterable<string>, oneShotApps: Iterable<string> = []): void {
  for (const app of oneShotApps) processExits.inc({ app, reason: 'failed' }, 0);
  for (const app of apps) {
    for (const reason of RESTART_REASONS) processRestarts.inc({ app, reason }, 0);
    processReloads.inc({ app, reason: 'memory' }, 0);
    crashLoops.inc({ app }, 0);
    badConfigurations.inc({ app }, 0);
  }
}

/** No default process metrics here: those describe the api workers, and the sums would mix. */
export function createSupervisorRegistry(): Registry {
  const registry = new Registry();
  for (const counter of [processRestarts, processExits, crashLoops, badConfigurations, processReloads] as const) registry.registerMetric(counter);
  return registry;
}
