// The request log: one line per request in backend.log, category `request`:
//   2026-11-28 02:40:11 - request - INFO - POST /api/login 401 63.2 ms id=5f0c… ip=127.0.0.1
// REQUEST_LOG_SAMPLE keeps a busy server from drowning its disk (0.1 writes one request in ten);
// a request slower than SLOW_REQUEST_MS is always written, as a warning. Successful answers of
// the monitoring routes (probes, /metrics, /api/status, the status page) are written at DEBUG:
// a load balancer asks every second, a status page every two.
// Error answers also have their own WARN/ERROR line from the error handler, whatever the sample.
import type { Request } from 'restify';
import type { ObservabilityConfig } from '../config';
import type { Logger } from '../logger';
import { UNMATCHED_ROUTE } from '../metrics/counters';
import { MONITORING_ROUTES } from './paths';
import type { ClientIpResolver } from './clientIp';
import { pathOf } from './paths';

const MAX_PATH_LENGTH = 120;

export class RequestLog {
  constructor(
    private readonly log: Logger,
    private readonly options: Pick<ObservabilityConfig, 'requestLogSample' | 'slowRequestMs'>,
    /** The client as the rate limits see it (X-Forwarded-For from trusted proxies only). */
    private readonly clientIp: ClientIpResolver,
  ) {}

  /** `requestId` is asked for only when a line is written: most probes get none. */
  record(req: Request, status: number, route: string, ms: number, requestId: () => string): void {
    const { slowRequestMs, requestLogSample } = this.options;
    if (slowRequestMs > 0 && ms >= slowRequestMs) {
      this.log.warn(`Slow request: ${this.line(req, status, route, ms, requestId)} (SLOW_REQUEST_MS=${slowRequestMs})`);
      return;
    }
    if (status < 400 && MONITORING_ROUTES.has(route)) {
      if (this.log.isDebugEnabled()) this.log.debug(this.line(req, status, route, ms, requestId));
      return;
    }
    if (requestLogSample < 1 && Math.random() >= requestLogSample) return;
    if (this.log.isInfoEnabled()) this.log.info(this.line(req, status, route, ms, requestId));
  }

  private line(req: Request, status: number, route: string, ms: number, requestId: () => string): string {
    // An unmatched request shows its path (without the query, which may hold anything).
    const target = route === UNMATCHED_ROUTE ? `(unmatched) ${shortened(pathOf(req.url))}` : route;
    return `${req.method ?? '-'} ${target} ${status} ${ms.toFixed(1)} ms id=${requestId()} ip=${this.clientIp(req)}`;
  }
}

function shortened(path: string): string {
  return path.length > MAX_PATH_LENGTH ? `${path.slice(0, MAX_PATH_LENGTH)}…` : path;
}
