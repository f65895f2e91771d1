// The request log: one line per request in backend.log, category `request`:
//   2026-11-28 02:40:11 - request - INFO - POST /api/login 401 63.2 ms id=5f0c… ip=127.0.0.1
// REQUEST_LOG_SAMPLE keeps a busy server from drowning its disk (0.1 writes one request in ten);
// a request slower than SLOW_REQUEST_MS is always written, as a warning. Successful answers of
// the monitoring routes (probes, /metrics, /api/status, the status page) are written at DEBUG:
// a load balancer asks every second, a status page every two.
// Error answers also have their own WARN/ERROR line from the error handler, whatever the sample.
import type { Request, Response } from 'restify';
import type { ObservabilityConfig } from '../config';
import type { Logger } from '../logger';
import { UNMATCHED_ROUTE } from '../metrics/counters';
import { clientText } from '../util/clientText';
import type { ClientIpResolver } from './clientIp';
import { MONITORING_ROUTES, pathOf } from './paths';
import { requestIdOf } from './respond';

const MAX_PATH_LENGTH = 120;

export class RequestLog {
  constructor(
    private readonly log: Logger,
    private readonly options: Pick<ObservabilityConfig, 'requestLogSample' | 'slowRequestMs'>,
    /** The client as the rate limits see it (X-Forwarded-For from trusted proxies only). */
    private readonly clientIp: ClientIpResolver,
  ) {}

  /** The request id is read (and made, for a probe that has none yet) only when a line is written. */
  record(req: Request, res: Response, status: number, route: string, ms: number): void {
    const { slowRequestMs, requestLogSample } = this.options;
    if (slowRequestMs > 0 && ms >= slowRequestMs) {
      this.log.warn(`Slow request: ${this.line(req, res, status, route, ms)} (SLOW_REQUEST_MS=${slowRequestMs})`);
      return;
    }
    if (status < 400 && MONITORING_ROUTES.has(route)) {
      if (this.log.isDebugEnabled()) this.log.debug(this.line(req, res, status, route, ms));
      return;
    }
    if (requestLogSample < 1 && Math.random() >= requestLogSample) return;
    if (this.log.isInfoEnabled()) this.log.info(this.line(req, res, status, route, ms));
  }

  private line(req: Request, res: Response, status: number, route: string, ms: number): string {
    // An unmatched request shows its path (without the query, which may hold anything).
    const target = route === UNMATCHED_ROUTE ? `(unmatched) ${clientText(pathOf(req.url), MAX_PATH_LENGTH)}` : route;
    return `${clientText(req.method ?? '-', 16)} ${target} ${status} ${ms.toFixed(1)} ms id=${requestIdOf(req, res)} ip=${this.clientIp(req)}`;
  }
}
