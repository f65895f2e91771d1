// Metrics of an api process: its registry, the database hooks, and (under PM2) the socket its
// siblings read it from, so that any worker can answer a scrape for the whole cluster.
import type { Config } from '../../platform/config';
import type { Logger } from '../../platform/logging/logger';
import { Registry } from 'prom-client';
import { registerBackupMetrics } from './backupMetrics';
import { ClusterMetrics, MetricsSocket } from '../../platform/metrics/cluster';
import type { ApiCounters } from './counters';
import { createRegistry, observeDatabase, type RegistrySources } from './registry';

export interface ProcessMetrics {
  readonly metrics: ClusterMetrics;
  /** Removes this process's socket (its siblings stop asking it). */
  close(): Promise<void>;
}

export async function startProcessMetrics(
  config: Config,
  sources: RegistrySources & {
    readonly db: Parameters<typeof observeDatabase>[0];
    /** Where the backups are (BACKUP_DIR) and of which database: read when a scrape is answered. */
    readonly backup: { readonly dir: string; readonly database: string };
  },
  counters: ApiCounters,
  log: Logger,
): Promise<ProcessMetrics> {
  observeDatabase(sources.db, counters);
  const registry = createRegistry(sources, counters);
  // PM2 names each process (`name`) and numbers it (`pm_id`); outside PM2 there are no siblings.
  const app = process.env['name'] ?? 'api';
  const label = `${app}-${sources.worker}`;
  let socket: MetricsSocket | undefined;
  if (process.env['pm_id'] !== undefined) {
    socket = new MetricsSocket(config.observability.metricsSocketDir, label, registry, log);
    if (!(await socket.listen())) socket = undefined;
  }
  // The backups describe the deployment, not this process: only the worker that answers a
  // scrape reads the folder, and the status page's cluster view never does.
  const deployment = new Registry();
  registerBackupMetrics(deployment, sources.backup);
  return { metrics: new ClusterMetrics(registry, label, socket, deployment), close: async () => socket?.close() };
}
