// GET /metrics: Prometheus text for every process of the cluster (see metrics/cluster.ts).
import type { Server } from 'restify';
import type { ClusterMetrics } from '../../metrics/cluster';
import { sendBody } from '../respond';

export function registerMetricsRoute(server: Server, metrics: ClusterMetrics): void {
  server.get('/metrics', async (_req, res) => {
    sendBody(res, 200, metrics.contentType, await metrics.text());
  });
}
