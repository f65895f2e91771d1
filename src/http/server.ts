// The restify server: request ids, routes, and the one error path.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import restify from 'restify';
import { LoginGuard } from '../auth/bruteForce';
import type { PasswordHasher } from '../auth/passwords';
import type { TokenService } from '../auth/tokens';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { RequestCountRepository } from '../db/requestCounts';
import type { UserRepository } from '../db/users';
import type { Lifecycle } from '../lifecycle';
import { getLogger } from '../logger';
import { clientIpResolver } from './clientIp';
import { sendError } from './errors';
import { rateLimitHandler, SharedRateLimiter } from './rateLimit';
import type { ClusterMetrics } from '../metrics/cluster';
import { installRequestObserver, markArrival, resolveRouteEarly } from './observeRequests';
import { isExemptFromOverload, type OverloadGuard } from './overload';
import { RequestLog } from './requestLog';
import { assignRequestId } from './respond';
import { registerAccountRoutes } from './routes/accounts';
import { registerFaultRoutes } from './routes/faults';
import { registerHealthRoutes } from './routes/health';
import { configureSecurityHeaders, securityHeaders } from './securityHeaders';
import { MonitoringAccess } from './monitoringAccess';
import { registerMetricsRoute } from './routes/metrics';
import { registerStatusPage } from './routes/statusPage';
import { asError } from '../util/errors';

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
}

export function createServer(deps: ServerDeps): restify.Server {
  const { config } = deps;
  const httpLog = getLogger('http');
  const server = restify.createServer({
    // No Server header: nothing to tell a scanner.
    name: '',
    ignoreTrailingSlash: true,
    // HTTPS when both files are configured (read and checked by config.ts).
    ...(config.tls ? { certificate: config.tls.cert, key: config.tls.key } : {}),
  });
  configureSecurityHeaders({ hsts: config.tls !== undefined });
  limitSlowClients(server, config.http);

  guardSynchronousThrows(server);
  const clientIp = clientIpResolver(config.trustedProxies);

  installRequestObserver({
    metrics: deps.metrics !== undefined,
    requestLog: new RequestLog(getLogger('request'), config.observability, clientIp),
  });

  // `first` handlers are synchronous and skip restify's handler chain: the cheapest hook, and
  // the one place every request passes, so arrival time, request id and overload shedding live here.
  const { overload } = deps;
  server.first((req, res) => {
    const arrived = performance.now();
    markArrival(req, arrived);
    assignRequestId(req, res);
    if (overload.shouldShed(arrived) && !isExemptFromOverload(req.url)) {
      resolveRouteEarly(server, req);
      overload.reject(req, res);
      return false;
    }
    return true;
  });
  if (config.rateLimitPerMinute > 0) {
    const limiter = new SharedRateLimiter(config.rateLimitPerMinute, new RequestCountRepository(deps.db), getLogger('ratelimit'));
    limiter.start();
    server.first(rateLimitHandler(limiter, clientIp, httpLog));
  }

  registerHealthRoutes(server, deps);
  const monitoringAccess = new MonitoringAccess({
    allow: config.observability.metricsAllow,
    token: config.observability.metricsToken,
    trustedProxies: config.trustedProxies,
    clientIp,
  });
  if (deps.metrics) registerMetricsRoute(server, deps.metrics, monitoringAccess);
  registerStatusPage(server, { ...deps, monitoringAccess });
  const authLog = getLogger('auth');
  registerAccountRoutes(server, {
    users: deps.users,
    passwords: deps.passwords,
    tokens: deps.tokens,
    maxBodyBytes: config.http.maxBodyBytes,
    log: authLog,
    clientIp,
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
  if (config.faultInjection) registerFaultRoutes(server, { lifecycle: deps.lifecycle, log: getLogger('faults'), db: deps.db });

  // Every error of every route, parser, unknown path or wrong method passes here exactly once.
  server.on('restifyError', (req: restify.Request, res: restify.Response, error: unknown, done: () => void) => {
    sendError(req, res, error, httpLog);
    done();
  });

  answerUnparsableRequests(server, httpLog);
  return server;
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

/**
 * Requests Node cannot parse never reach restify; Node would answer a bare 400 with no body.
 * Answer them with the envelope too, then close the connection.
 */
function answerUnparsableRequests(server: restify.Server, log: ReturnType<typeof getLogger>): void {
  server.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const code = status === 431 ? 'RequestHeaderFieldsTooLarge' : status === 408 ? 'RequestTimeout' : 'BadRequest';
    const message = status === 431 ? 'Request headers too large' : status === 408 ? 'Request took too long to arrive' : 'Malformed HTTP request';
    const requestId = randomUUID();
    const body = JSON.stringify({ code, message, requestId });
    log.warn(`Request ${requestId} could not be parsed (${error.code ?? error.message}); answered ${status} ${code}`);
    const extra = securityHeaders()
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\n${extra}Connection: close\r\n\r\n${body}`,
    );
  });
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
