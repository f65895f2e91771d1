// The request log: one line per request in backend.log, category `request`:
//   2026-11-28 02:40:11 - request - INFO - POST /api/login 401 63.2 ms id=5f0c… ip=127.0.0.1
// REQUEST_LOG_SAMPLE keeps a busy server from drowning its disk (0.1 writes one request in ten);
// a request slower than SLOW_REQUEST_MS is always written, as a warning. Successful answers of
// the monitoring routes (probes, /metrics, /api/status, the status page) are written at DEBUG:
// a load balancer asks every second, a status page every two.
// Error answers also have their own WARN/ERROR line from the error handler, whatever the sample.
// Requests Node's parser refused and CONNECTs (answered on the socket) get the same line:
//   2026-11-28 02:41:00 - request - INFO - - (unparsed) 431 3.1 ms id=… ip=…
import type { Request, Response } from 'restify';
import type { ObservabilityConfig } from '../../platform/config';
import type { Logger } from '../../platform/logging/logger';
import { UNMATCHED_ROUTE, UNPARSED_ROUTE } from '../metrics/counters';
import { clientText } from '../../platform/util/clientText';
import type { ClientIpResolver } from './clientIp';
import { MONITORING_ROUTES, pathOf } from './paths';
import { requestIdOf } from './respond';

const MAX_PATH_LENGTH = 120;

/**
 * An answer written straight to the socket, with no restify request to read: a request Node's
 * parser refused (route UNPARSED_ROUTE, method unknown) or a CONNECT (socketAnswers.ts).
 */
export interface SocketAnswer {
  /** undefined when the parser could not read it. */
  readonly method: string | undefined;
  readonly route: string;
  /** The request target, shown for an unmatched route. */
  readonly target: string | undefined;
  readonly status: number;
  readonly ms: number;
  readonly requestId: string;
  readonly ip: string;
}

type Verdict = 'slow' | 'debug' | 'info' | undefined;

export class RequestLog {
  constructor(
    private readonly log: Logger,
    private readonly options: Pick<ObservabilityConfig, 'requestLogSample' | 'slowRequestMs'>,
    /** The client as the rate limits see it (X-Forwarded-For from trusted proxies only). */
    private readonly clientIp: ClientIpResolver,
  ) {}

  /** The request id is read (and made, for a probe that has none yet) only when a line is written. */
  record(req: Request, res: Response, status: number, route: string, ms: number): void {
    const verdict = this.verdict(status, route, ms);
    if (verdict === undefined) return;
    this.write(verdict, line(req.method, route, req.url, status, ms, requestIdOf(req, res), this.clientIp(req)));
  }

  recordSocketAnswer(answer: SocketAnswer): void {
    const verdict = this.verdict(answer.status, answer.route, answer.ms);
    if (verdict === undefined) return;
    this.write(verdict, line(answer.method, answer.route, answer.target, answer.status, answer.ms, answer.requestId, answer.ip));
  }

  /** Whether and how a line is written: slow always, monitoring successes at DEBUG, the rest sampled. */
  private verdict(status: number, route: string, ms: number): Verdict {
    const { slowRequestMs, requestLogSample } = this.options;
    if (slowRequestMs > 0 && ms >= slowRequestMs) return 'slow';
    if (status < 400 && MONITORING_ROUTES.has(route)) return this.log.isDebugEnabled() ? 'debug' : undefined;
    if (requestLogSample < 1 && Math.random() >= requestLogSample) return undefined;
    return this.log.isInfoEnabled() ? 'info' : undefined;
  }

  private write(verdict: Exclude<Verdict, undefined>, text: string): void {
    if (verdict === 'slow') this.log.warn(`Slow request: ${text} (SLOW_REQUEST_MS=${this.options.slowRequestMs})`);
    else if (verdict === 'debug') this.log.debug(text);
    else this.log.info(text);
  }
}

function line(method: string | undefined, route: string, url: string | undefined, status: number, ms: number, id: string, ip: string): string {
  // An unmatched request shows its path (without the query, which may hold anything).
  const target =
    route === UNMATCHED_ROUTE ? `(unmatched) ${clientText(pathOf(url), MAX_PATH_LENGTH)}` : route === UNPARSED_ROUTE ? '(unparsed)' : route;
  return `${clientText(method ?? '-', 16)} ${target} ${status} ${ms.toFixed(1)} ms id=${id} ip=${ip}`;
}
