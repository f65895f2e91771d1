// GET /metrics: Prometheus text for every process of the cluster (see metrics/cluster.ts), for
// the clients MonitoringAccess lets in; everyone else gets 403 before anything is gathered.
import type { Server } from 'restify';
import { ForbiddenError } from 'restify-errors';
import type { ClusterMetrics } from '../../../platform/metrics/cluster';
import type { MonitoringAccess } from '../monitoringAccess';
import type { ResponseWriter } from '../respond';

/** The refusal of /metrics and /status/summary: says how to get in, names nothing secret. */
export function monitoringForbidden(): ForbiddenError {
  return new ForbiddenError('Monitoring details are for allowed clients only (see METRICS_ALLOW and METRICS_TOKEN)');
}

export function registerMetricsRoute(
  server: Server,
  metrics: ClusterMetrics,
  access: MonitoringAccess,
  writer: Pick<ResponseWriter, 'sendBody'>,
): void {
  server.get('/metrics', async (req, res) => {
    if (!access.allows(req)) throw monitoringForbidden();
    writer.sendBody(res, 200, metrics.contentType, await metrics.text());
  });
}
