// Fault injection, for tests and drills only: these routes exist only when FAULT_INJECTION is
// set (and in production only with its deliberate opt-in, see config.ts). Each one breaks the
// process in one of the ways the service must survive, so each answers only a client on this
// host that came straight to it; anyone else gets the 404 of an unknown path.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Next, Request, Response, Server } from 'restify';
import { BadRequestError, ResourceNotFoundError } from 'restify-errors';
import { isDirectLoopbackClient } from '../monitoringAccess';
import type { Database } from '../../../platform/db/database';
import type { Lifecycle } from '../../../platform/lifecycle';
import type { Logger } from '../../../platform/logging/logger';
import { pathOf } from '../paths';
import { clientText } from '../../../platform/util/clientText';
import { requestIdOf, type ResponseWriter } from '../respond';

function numberParam(req: Request, name: string, fallback: number, max: number): number {
  const raw = new URL(req.url ?? '/', 'http://local').searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new BadRequestError(`${name} must be an integer from 0 to ${max}`);
  return value;
}

/** Runs before every fault route: a client that is not directly on loopback sees no such route. */
function loopbackOnly(req: Request, _res: Response, next: Next): void {
  if (isDirectLoopbackClient(req)) next();
  else next(new ResourceNotFoundError('%s does not exist', req.path()));
}

/**
 * Before routing, so that not even a wrong method (405 names the methods a route has) tells a
 * client that is not on loopback that these routes exist; the route guard above still holds
 * for any spelling of a path that reaches a fault route.
 */
function hideFromOthers(server: Server, log: Logger, writer: Pick<ResponseWriter, 'sendJsonBeforeRouting'>): void {
  server.first((req, res) => {
    const path = pathOf(req.url);
    if (!path.toLowerCase().startsWith('/__fault') || isDirectLoopbackClient(req)) return true;
    log.warn(`${clientText(req.method ?? '?', 20)} ${clientText(path, 100)} refused: the fault routes answer direct loopback clients only; answered 404`);
    writer.sendJsonBeforeRouting(res, 404, { code: 'ResourceNotFound', message: `${clientText(path, 200)} does not exist`, requestId: requestIdOf(req, res) });
    return false;
  });
}

export function registerFaultRoutes(
  server: Server,
  deps: {
    readonly lifecycle: Lifecycle;
    readonly log: Logger;
    readonly db: Pick<Database, 'select'>;
    readonly writer: Pick<ResponseWriter, 'sendJson' | 'sendJsonBeforeRouting'>;
  },
): void {
  const { lifecycle, log, db, writer } = deps;
  log.warn('FAULT_INJECTION is on: /__fault routes (loopback clients only) can crash, hang or stop this process');
  hideFromOthers(server, log, writer);

  // A synchronous throw inside a (non-async) handler: must become a 500, not a dead process.
  server.get('/__fault/throw', loopbackOnly, (_req: Request, _res: Response, _next: Next) => {
    throw new Error('Injected synchronous failure with secret internals');
  });

  // A rejected promise inside an async handler.
  server.get('/__fault/reject', loopbackOnly, async () => {
    await Promise.resolve();
    throw new Error('Injected asynchronous failure with secret internals');
  });

  // An exception outside any request: logged, drained, exit 1, restarted by the supervisor.
  server.post('/__fault/crash', loopbackOnly, async (_req, res) => {
    writer.sendJson(res, 202, { fault: 'crash' });
    setTimeout(() => {
      throw new Error('Injected crash outside a request');
    }, 50);
  });

  // A rejection nobody handles: logged, and the process keeps serving.
  server.post('/__fault/unhandled-rejection', loopbackOnly, async (_req, res) => {
    void Promise.reject(new Error('Injected unhandled rejection'));
    writer.sendJson(res, 202, { fault: 'unhandled-rejection' });
  });

  // Leave at once with the given code.
  server.post('/__fault/exit', loopbackOnly, async (req, res) => {
    const code = numberParam(req, 'code', 1, 255);
    writer.sendJson(res, 202, { fault: 'exit', code });
    setTimeout(() => lifecycle.exitNow(code), 50);
  });

  // Block the event loop (a stuck process) for ms milliseconds.
  server.post('/__fault/block', loopbackOnly, async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 600_000);
    // The pid says which worker will be stuck (PM2 balances requests over all of them).
    writer.sendJson(res, 202, { fault: 'block', ms, pid: process.pid });
    setTimeout(() => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // busy on purpose
      }
    }, 10);
  });

  // A slow request, to watch a drain finish it.
  server.get('/__fault/slow', loopbackOnly, async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 120_000);
    await sleep(ms);
    writer.sendJson(res, 200, { fault: 'slow', ms });
  });

  // A slow database statement (holds a pooled connection for ms milliseconds).
  server.get('/__fault/slow-query', loopbackOnly, async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 60_000);
    await db.select('SELECT SLEEP(?) AS slept', [ms / 1000]);
    writer.sendJson(res, 200, { fault: 'slow-query', ms });
  });
}
