// Health for monitors, load balancers and people: /health, /api/status, /livez, /readyz.
// Each answers within HEALTH_BUDGET_MS whatever the database does, and a storm of probes
// costs the database at most one ping and one count per second per process.
import type { Next, Request, Response, Server } from 'restify';
import type { Database } from '../../../platform/db/database';
import type { UserRepository } from '../../store/users';
import type { Lifecycle } from '../../../platform/lifecycle';
import { SharedValue, withDeadline } from '../../../platform/util/async';
import { RETRY_AFTER_SECONDS } from '../errors';
import type { OverloadState } from '../overload';
import type { ResponseWriter } from '../respond';

/** Every health answer within 1 s (docs/http-api.md). The remainder is margin for the event loop. */
const HEALTH_BUDGET_MS = 900;

export interface HealthDeps {
  readonly db: Database;
  readonly users: UserRepository;
  readonly lifecycle: Lifecycle;
  readonly version: string;
  /** The overload guard: while it sheds, /api/status marks the api service unhealthy. */
  readonly overload: { readonly state: OverloadState };
  readonly writer: Pick<ResponseWriter, 'sendJson'>;
}

// Cache-Control: no-store is on every answer already (securityHeaders.ts).
const unavailableHeaders: Readonly<Record<string, string>> = { 'Retry-After': String(RETRY_AFTER_SECONDS) };

export function registerHealthRoutes(server: Server, deps: HealthDeps): void {
  const { db, users, lifecycle, version, writer } = deps;
  const totalUsers = new SharedValue(() => users.count(), 1000);

  /** True when the database answered a check no older than 1 s. */
  const databaseUp = (): boolean | Promise<boolean> => {
    // The monitor pings twice a second, so the usual answer is at hand: no promise, no timer.
    const snapshot = db.monitor.freshSnapshot();
    if (snapshot) return snapshot.state === 'up';
    return withDeadline(db.monitor.fresh(), HEALTH_BUDGET_MS).then(
      (fresh) => fresh.state === 'up',
      () => false,
    );
  };

  const answerHealth = (res: Response, connected: boolean): void => {
    const status = lifecycle.draining ? 'shutting_down' : connected ? 'healthy' : 'unhealthy';
    const body = {
      status,
      timestamp: new Date().toISOString(),
      database: connected ? 'connected' : 'disconnected',
      version,
    };
    if (status === 'healthy') writer.sendJson(res, 200, body);
    else writer.sendJson(res, 503, body, unavailableHeaders);
  };

  // Not async: the usual answer is at hand, and a promise per probe cost about a tenth of this
  // route's CPU (measured). Only a stale snapshot waits for the shared check.
  server.get('/health', (_req: Request, res: Response, next: Next) => {
    const connected = databaseUp();
    if (typeof connected === 'boolean') {
      answerHealth(res, connected);
      next();
      return;
    }
    connected.then((fresh) => {
      answerHealth(res, fresh);
      next();
    }, next);
  });

  server.get('/api/status', async (req, res) => {
    const started = Date.now();
    let databaseHealthy = (await databaseUp()) && db.available;
    let total: number | null = totalUsers.lastKnown ?? null;
    // HEAD (an uptime monitor) is answered from the ping alone: the count only fills the body
    // HEAD leaves out. Its Content-Length is that of the body with the last known count.
    if (databaseHealthy && req.method !== 'HEAD') {
      try {
        total = await withDeadline(totalUsers.get(), HEALTH_BUDGET_MS - (Date.now() - started));
      } catch {
        databaseHealthy = false;
      }
    }
    const overload = deps.overload.state;
    const apiHealthy = !overload.overloaded;
    const body = {
      status: databaseHealthy && apiHealthy ? 'ok' : 'degraded',
      timestamp: new Date().toISOString(),
      services: { database: databaseHealthy ? 'healthy' : 'unhealthy', api: apiHealthy ? 'healthy' : 'unhealthy' },
      stats: { total_users: total },
      // Only while overloaded: what the guard saw (an extra field; the documented fields keep their shape).
      ...(apiHealthy ? {} : { overload: overload.reasons }),
    };
    if (databaseHealthy && apiHealthy) writer.sendJson(res, 200, body);
    else writer.sendJson(res, 503, body, unavailableHeaders);
  });

  // Liveness: answering at all proves the event loop turns; the database is not our liveness.
  server.get('/livez', (_req: Request, res: Response, next: Next) => {
    writer.sendJson(res, 200, { status: 'alive', uptime: Math.round(process.uptime()) });
    next();
  });

  server.get('/readyz', async (_req, res) => {
    if (lifecycle.draining) {
      writer.sendJson(res, 503, { status: 'shutting_down' }, unavailableHeaders);
      return;
    }
    const reasons: string[] = [];
    if (lifecycle.state !== 'ready') reasons.push('starting');
    if (!(await databaseUp())) reasons.push('database unreachable');
    else if (!db.schemaReady) reasons.push('migrations pending');
    if (reasons.length === 0) writer.sendJson(res, 200, { status: 'ready' });
    else writer.sendJson(res, 503, { status: 'not_ready', reasons }, unavailableHeaders);
  });
}
