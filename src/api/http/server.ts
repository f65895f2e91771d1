// The restify server: request ids, routes, and the one error path.
import type { IncomingMessage, ServerResponse } from 'node:http';
import restify from 'restify';
import { AccountService } from '../accounts/service';
import { LoginGuard } from '../auth/bruteForce';
import type { PasswordHasher } from '../auth/passwords';
import type { TokenService } from '../auth/tokens';
import type { Config } from '../../platform/config';
import type { Database } from '../../platform/db/database';
import { RequestCountRepository } from '../store/requestCounts';
import type { UserRepository } from '../store/users';
import type { Lifecycle } from '../../platform/lifecycle';
import { getLogger } from '../../platform/logging/logger';
import { clientIpResolver, UntrustedForwardingWarning } from './clientIp';
import { sendError } from './errors';
import { HOLD_DEADLINE_MS, isResumedByRateLimit, rateLimitHandler, SharedRateLimiter, workersOnThisHost } from './rateLimit';
import type { ClusterMetrics } from '../../platform/metrics/cluster';
import type { ApiCounters } from '../metrics/counters';
import { answerServerWideOptions, refineRoutingError, supportHeadAndOptions } from './methods';
import { markArrival, requestObservers, resolveRouteEarly } from './observeRequests';
import { isExemptFromOverload, type OverloadGuard } from './overload';
import { RequestLog } from './requestLog';
import { assignRequestId, ResponseWriter } from './respond';
import { registerAccountRoutes } from './routes/accounts';
import { registerFaultRoutes } from './routes/faults';
import { registerHealthRoutes } from './routes/health';
import { securityHeaderPairs } from './securityHeaders';
import { answerOnSocket } from './socketAnswers';
import { MonitoringAccess } from './monitoringAccess';
import { registerMetricsRoute } from './routes/metrics';
import { registerOpenApiRoute } from './routes/openapi';
import { registerStatusPage } from './routes/statusPage';
import { asError } from '../../platform/util/errors';

export interface ServerDeps {
  readonly config: Config;
  readonly db: Database;
  readonly users: UserRepository;
  /** Hashes and checks passwords on its bounded threads and queue. */
  readonly passwords: PasswordHasher;
  readonly tokens: TokenService;
  readonly lifecycle: Lifecycle;
  readonly version: string;
  readonly overload: OverloadGuard;
  /** The cluster's metrics; undefined with METRICS_ENABLED=0 (no /metrics, nothing counted). */
  readonly metrics: ClusterMetrics | undefined;
  /** This process's PM2 id ('0' outside PM2). */
  readonly worker: string;
  /** What the requests count into (read only when metrics are on). */
  readonly counters: ApiCounters;
}

export interface ApiServer {
  readonly server: restify.Server;
  /** Writes every answer of the server; main asks it for `Connection: close` when draining starts. */
  readonly writer: ResponseWriter;
}

export function createServer(deps: ServerDeps): ApiServer {
  const { config, counters } = deps;
  const httpLog = getLogger('http');
  const server = restify.createServer({
    // No Server header: nothing to tell a scanner.
    name: '',
    ignoreTrailingSlash: true,
    // HTTPS when both files are configured (read and checked by config.ts).
    ...(config.tls ? { certificate: config.tls.cert, key: config.tls.key } : {}),
  });
  limitSlowClients(server, config.http);
  const clientIp = clientIpResolver(config.trustedProxies, new UntrustedForwardingWarning(httpLog));

  // One writer for every answer of this server: its security headers (HSTS only when it speaks
  // HTTPS), and the observer that counts and logs each answer.
  const securityHeaders = securityHeaderPairs({ hsts: config.tls !== undefined });
  const observers = requestObservers({
    metrics: deps.metrics !== undefined,
    counters,
    requestLog: new RequestLog(getLogger('request'), config.observability, clientIp),
  });
  const writer = new ResponseWriter(securityHeaders, observers.response);

  guardSynchronousThrows(server);
  // Before any route: every route registered from here on gets its HEAD and OPTIONS.
  const routeMethods = supportHeadAndOptions(server, writer);

  // `first` handlers are synchronous and skip restify's handler chain: the cheapest hook, and
  // the one place every request passes, so arrival time, request id and overload shedding live here.
  const { overload } = deps;
  server.first((req, res) => {
    // Held by the rate limit for a sync and handed back: arrival, id and shedding were done.
    if (isResumedByRateLimit(req)) return true;
    const arrived = performance.now();
    markArrival(req, arrived);
    assignRequestId(req, res);
    if (overload.shouldShed(arrived) && !isExemptFromOverload(req.url)) {
      resolveRouteEarly(routeMethods, req);
      overload.reject(req, res, writer);
      return false;
    }
    return true;
  });
  if (config.rateLimitPerMinute > 0) {
    const limiter = new SharedRateLimiter(config.rateLimitPerMinute, new RequestCountRepository(deps.db), getLogger('ratelimit'), {
      workers: workersOnThisHost(config.apiInstances),
      // A held request never waits longer than the database may take to answer at all.
      holdDeadlineMs: Math.min(HOLD_DEADLINE_MS, config.db.queryTimeoutMs),
    });
    limiter.start();
    // A request held for a sync re-enters restify as a new arrival would (the first chain
    // lets it through at once, see isResumedByRateLimit).
    const resume = (req: IncomingMessage, res: ServerResponse): void => void server.server.emit('request', req, res);
    server.first(rateLimitHandler(limiter, clientIp, httpLog, resume, { writer, counters }));
  }

  answerServerWideOptions(server, routeMethods, writer);
  registerHealthRoutes(server, { ...deps, writer });
  const monitoringAccess = new MonitoringAccess({
    allow: config.observability.metricsAllow,
    token: config.observability.metricsToken,
    trustedProxies: config.trustedProxies,
    clientIp,
  });
  if (deps.metrics) registerMetricsRoute(server, deps.metrics, monitoringAccess, writer);
  registerStatusPage(server, { ...deps, monitoringAccess, writer });
  registerOpenApiRoute(server, deps.version, writer);
  const authLog = getLogger('auth');
  const accounts = new AccountService({
    users: deps.users,
    passwords: deps.passwords,
    tokens: deps.tokens,
    log: authLog,
    counters,
    loginGuard: new LoginGuard(
      deps.db.lender(),
      config.db.database,
      {
        maxFailures: config.loginMaxFailures,
        blockSeconds: config.loginBlockSeconds,
        maxFailuresPerIpPerDay: config.loginMaxFailuresPerIpPerDay,
        timeoutMs: config.db.queryTimeoutMs,
      },
      authLog,
    ),
  });
  registerAccountRoutes(server, {
    accounts,
    users: deps.users,
    tokens: deps.tokens,
    maxBodyBytes: config.http.maxBodyBytes,
    log: authLog,
    clientIp,
    writer,
    counters,
  });
  if (config.faultInjection) registerFaultRoutes(server, { lifecycle: deps.lifecycle, log: getLogger('faults'), db: deps.db, writer });

  // Every error of every route, parser, unknown path or wrong method passes here exactly once.
  server.on('restifyError', (req: restify.Request, res: restify.Response, error: unknown, done: () => void) => {
    sendError(req, res, refineRoutingError(req, error), httpLog, writer);
    done();
  });

  answerOnSocket(server.server, {
    log: httpLog,
    observe: observers.socketAnswer,
    clientIp,
    routes: routeMethods,
    tls: config.tls !== undefined,
    securityHeaders,
  });
  return { server, writer };
}

/**
 * A client must send its headers within headersTimeoutMs and its whole request within
 * requestTimeoutMs (slowloris), and an idle keep-alive connection goes after keepAliveTimeoutMs.
 * Node checks the first two every connectionsCheckingInterval (30 s by default, read when the
 * server starts listening): checked every second instead, so the bounds hold within a second.
 */
function limitSlowClients(server: restify.Server, http: Config['http']): void {
  const node = server.server;
  node.headersTimeout = http.headersTimeoutMs;
  node.requestTimeout = http.requestTimeoutMs;
  node.keepAliveTimeout = http.keepAliveTimeoutMs;
  (node as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = 1000;
}

type Handler = (req: restify.Request, res: restify.Response, next: restify.Next) => unknown;
const ROUTE_METHODS = ['get', 'post', 'put', 'patch', 'del', 'head', 'opts'] as const;

/**
 * restify calls a non-async handler from process.nextTick, so a synchronous throw there would be
 * an uncaught exception that kills the process. Every route registered on this server gets its
 * non-async handlers wrapped so such a throw becomes next(error): a 500 like any other.
 * (async handlers need nothing: restify turns their rejections into errors itself.)
 */
function guardSynchronousThrows(server: restify.Server): void {
  const guard = (handler: unknown): unknown => {
    if (Array.isArray(handler)) return handler.map(guard);
    if (typeof handler !== 'function' || handler.constructor.name === 'AsyncFunction') return handler;
    const inner = handler as Handler;
    const guarded: Handler = (req, res, next) => {
      try {
        return inner(req, res, next);
      } catch (error) {
        next(asError(error));
        return undefined;
      }
    };
    Object.defineProperty(guarded, 'name', { value: inner.name || 'handler' });
    return guarded;
  };
  for (const method of ROUTE_METHODS) {
    // The registration methods are overloaded in @types/restify; treat them as one signature.
    const register = (server[method] as (...args: unknown[]) => unknown).bind(server);
    (server as unknown as Record<string, unknown>)[method] = (path: unknown, ...handlers: unknown[]) =>
      register(path, ...handlers.map(guard));
  }
}
