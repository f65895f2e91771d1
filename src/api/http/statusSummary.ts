// The cluster's metrics boiled down to what a person reads on the status page: workers,
// restarts and request totals (the page turns successive totals into rates).
import type { ClusterView, MetricJson, Snapshot } from '../../platform/metrics/cluster';
import { MONITORING_ROUTES } from './paths';

export interface WorkerSummary {
  readonly worker: string;
  readonly pid: number;
  readonly uptimeSeconds: number;
  readonly database: 'up' | 'down';
  readonly overloaded: boolean;
  readonly draining: boolean;
  readonly heapUsedBytes: number;
  readonly requests: number;
}

export interface ClusterSummary {
  readonly workers: WorkerSummary[];
  /** Restarts after a crash or a signal death, as the supervisor saw them; null without a supervisor. */
  readonly restarts: number | null;
  /** Answers of the API (probes and status endpoints left out), all workers together. */
  readonly requests: { readonly total: number; readonly clientErrors: number; readonly serverErrors: number };
  readonly sources: ClusterView['sources'];
}

type Value = MetricJson['values'][number];

/** The sum of a metric's values in one snapshot, optionally only those whose labels pass `where`. */
function sumOf(snapshot: Snapshot, name: string, where: (labels: Value['labels']) => boolean = () => true): number {
  const metric = snapshot.metrics.find((m) => m.name === name);
  return (metric?.values ?? []).reduce((total, v) => total + (where(v.labels) ? v.value : 0), 0);
}

export function summarize(view: ClusterView): ClusterSummary {
  const workers: WorkerSummary[] = [];
  const requests = { total: 0, clientErrors: 0, serverErrors: 0 };
  let restarts: number | null = null;
  for (const snapshot of view.snapshots) {
    if (snapshot.metrics.some((m) => m.name === 'resilient_api_restarts_total')) {
      restarts = (restarts ?? 0) + sumOf(snapshot, 'resilient_api_restarts_total', (labels) => labels['app'] === 'api');
    }
    const info = snapshot.metrics.find((m) => m.name === 'resilient_api_worker_info')?.values[0];
    if (!info) continue;
    const api = (labels: Value['labels']): boolean => !MONITORING_ROUTES.has(String(labels['route']));
    const status = (labels: Value['labels']): number => Number(labels['status_code']);
    const total = sumOf(snapshot, 'resilient_api_http_requests_total', api);
    requests.total += total;
    requests.clientErrors += sumOf(snapshot, 'resilient_api_http_requests_total', (l) => api(l) && status(l) >= 400 && status(l) < 500);
    requests.serverErrors += sumOf(snapshot, 'resilient_api_http_requests_total', (l) => api(l) && status(l) >= 500);
    workers.push({
      worker: String(info.labels['worker'] ?? '?'),
      pid: snapshot.pid,
      uptimeSeconds: Math.round(sumOf(snapshot, 'resilient_api_worker_uptime_seconds')),
      database: sumOf(snapshot, 'resilient_api_db_up') > 0 ? 'up' : 'down',
      overloaded: sumOf(snapshot, 'resilient_api_overloaded') > 0,
      draining: sumOf(snapshot, 'resilient_api_draining') > 0,
      heapUsedBytes: sumOf(snapshot, 'nodejs_heap_size_used_bytes'),
      requests: total,
    });
  }
  workers.sort((a, b) => a.worker.localeCompare(b.worker, 'en', { numeric: true }));
  return { workers, restarts, requests, sources: view.sources };
}
