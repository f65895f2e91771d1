// Per-request observation without a middleware layer: the `first` handler notes the arrival
// time, and the response observer (given to the ResponseWriter, respond.ts) counts and logs each answer as it leaves.
// Each costs a few property reads and, with metrics on, one Map lookup: no 'finish' listener,
// no closure per request, no prom-client label hashing.
import type { Request, Response } from 'restify';
import { type ApiCounters, UNMATCHED_ROUTE } from '../metrics/counters';
import { methodLabel, type RouteMethods } from './methods';
import { wasShed } from './overload';
import { pathOf } from './paths';
import type { RequestLog, SocketAnswer } from './requestLog';
import type { ResponseObserver } from './respond';

const ARRIVED = Symbol('arrival time (performance.now())');
type Timed = Request & { [ARRIVED]?: number };

export function markArrival(req: Request, now: number): void {
  (req as Timed)[ARRIVED] = now;
}

/** The route template (`/api/users/:id`), or one shared label for anything unmatched. */
function routeLabel(req: Request): string {
  const path = req.getRoute?.()?.path;
  return path === undefined ? UNMATCHED_ROUTE : String(path);
}

/** Status codes as label strings, made once. */
const STATUS_LABELS: readonly string[] = Array.from({ length: 600 }, (_, code) => String(code));

export interface ObserverOptions {
  /** Count and time every request (METRICS_ENABLED). */
  readonly metrics: boolean;
  readonly counters: Pick<ApiCounters, 'httpRequests'>;
  readonly requestLog: RequestLog;
}

/** Counts and logs an answer written on the socket, outside restify (socketAnswers.ts). */
export type SocketAnswerObserver = (answer: SocketAnswer) => void;

export interface RequestObservers {
  /** For the ResponseWriter: every answer written through it. */
  readonly response: ResponseObserver;
  /** For socketAnswers.ts: every answer written on the raw socket. */
  readonly socketAnswer: SocketAnswerObserver;
}

/** The two observers of one server's answers: counted in the request metrics and logged. */
export function requestObservers(options: ObserverOptions): RequestObservers {
  const { metrics, requestLog } = options;
  const { httpRequests } = options.counters;
  const response = (res: Response, status: number): void => {
    const req = res.req as Timed;
    const arrived = req[ARRIVED];
    if (arrived === undefined) return;
    const ms = performance.now() - arrived;
    const route = routeLabel(req);
    if (metrics) httpRequests.observe([methodLabel(req.method), route, STATUS_LABELS[status] ?? String(status)], ms / 1000);
    if (!wasShed(req)) requestLog.record(req, res, status, route, ms);
  };
  const socketAnswer = (answer: SocketAnswer): void => {
    if (metrics) httpRequests.observe([methodLabel(answer.method), answer.route, String(answer.status)], answer.ms / 1000);
    requestLog.recordSocketAnswer(answer);
  };
  return { response, socketAnswer };
}

/**
 * restify routes a request only after the `first` handlers; for one answered there (shed by
 * the overload guard), look its template up anyway so its 503 counts under the right route.
 */
export function resolveRouteEarly(routes: Pick<RouteMethods, 'routeOf'>, req: Request): void {
  try {
    const route = routes.routeOf(req.method ?? 'GET', pathOf(req.url));
    if (route) (req as Request & { route?: unknown }).route = route;
  } catch {
    // The label stays 'unmatched'.
  }
}
