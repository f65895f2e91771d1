// GET /status: a status page for people, one HTML answer with its CSS and script inline
// (assets/status-page.html, see statusPageAsset.ts; nothing fetched from elsewhere), refreshed
// every 2 s from two JSON endpoints: /api/status (the documented health of the service and the database) and GET /status/summary
// (workers, restarts and request totals from the cluster's metrics; the page turns successive
// totals into rates). Its Content-Security-Policy allows exactly its own inline style and script.
import type { Server } from 'restify';
import type { ClusterMetrics } from '../../../platform/metrics/cluster';
import { summarize } from '../statusSummary';
import { SharedValue } from '../../../platform/util/async';
import type { MonitoringAccess } from '../monitoringAccess';
import type { OverloadGuard } from '../overload';
import type { ResponseWriter } from '../respond';
import { loadStatusPage } from '../statusPageAsset';
import { monitoringForbidden } from './metrics';

export interface StatusPageDeps {
  readonly metrics: ClusterMetrics | undefined;
  /** Who may read /status/summary (the page itself is for anyone). */
  readonly monitoringAccess: MonitoringAccess;
  readonly overload: Pick<OverloadGuard, 'state'>;
  readonly version: string;
  readonly worker: string;
  readonly writer: Pick<ResponseWriter, 'sendBody' | 'sendJson'>;
}

export function registerStatusPage(server: Server, deps: StatusPageDeps): void {
  // Read once at start-up, then served from memory.
  const page = loadStatusPage();
  server.get('/status', async (_req, res) => {
    deps.writer.sendBody(res, 200, 'text/html; charset=utf-8', page.html, page.headers);
  });

  // Every open page polls this, and it is exempt from the rate limit: however many pages poll,
  // the cluster (every worker's registry) is gathered at most once a second per worker.
  const metrics = deps.metrics;
  const clusterSummary = metrics ? new SharedValue(async () => summarize(await metrics.view()), 1000) : undefined;
  server.get('/status/summary', async (req, res) => {
    if (!deps.monitoringAccess.allows(req)) throw monitoringForbidden();
    const cluster = clusterSummary ? await clusterSummary.get() : null;
    deps.writer.sendJson(
      res,
      200,
      {
        timestamp: new Date().toISOString(),
        version: deps.version,
        worker: deps.worker,
        uptimeSeconds: Math.round(process.uptime()),
        overload: deps.overload.state,
        cluster,
      },
    );
  });
}
