// Fault injection, for tests and drills only: these routes exist only when FAULT_INJECTION is
// set. Each one breaks the process in one of the ways the service must survive.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Next, Request, Response, Server } from 'restify';
import { BadRequestError } from 'restify-errors';
import type { Database } from '../../db/database';
import type { Lifecycle } from '../../lifecycle';
import type { Logger } from '../../logger';
import { sendJson } from '../respond';

function numberParam(req: Request, name: string, fallback: number, max: number): number {
  const raw = new URL(req.url ?? '/', 'http://local').searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new BadRequestError(`${name} must be an integer from 0 to ${max}`);
  return value;
}

export function registerFaultRoutes(
  server: Server,
  deps: { lifecycle: Lifecycle; log: Logger; db: Pick<Database, 'select'> },
): void {
  const { lifecycle, log, db } = deps;
  log.warn('FAULT_INJECTION is on: /__fault routes can crash, hang or stop this process');

  // A synchronous throw inside a (non-async) handler: must become a 500, not a dead process.
  server.get('/__fault/throw', (_req: Request, _res: Response, _next: Next) => {
    throw new Error('Injected synchronous failure with secret internals');
  });

  // A rejected promise inside an async handler.
  server.get('/__fault/reject', async () => {
    await Promise.resolve();
    throw new Error('Injected asynchronous failure with secret internals');
  });

  // An exception outside any request: logged, drained, exit 1, restarted by the supervisor.
  server.post('/__fault/crash', async (_req, res) => {
    sendJson(res, 202, { fault: 'crash' });
    setTimeout(() => {
      throw new Error('Injected crash outside a request');
    }, 50);
  });

  // A rejection nobody handles: logged, and the process keeps serving.
  server.post('/__fault/unhandled-rejection', async (_req, res) => {
    void Promise.reject(new Error('Injected unhandled rejection'));
    sendJson(res, 202, { fault: 'unhandled-rejection' });
  });

  // Leave at once with the given code.
  server.post('/__fault/exit', async (req, res) => {
    const code = numberParam(req, 'code', 1, 255);
    sendJson(res, 202, { fault: 'exit', code });
    setTimeout(() => lifecycle.exitNow(code), 50);
  });

  // Block the event loop (a stuck process) for ms milliseconds.
  server.post('/__fault/block', async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 600_000);
    sendJson(res, 202, { fault: 'block', ms });
    setTimeout(() => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // busy on purpose
      }
    }, 10);
  });

  // A slow request, to watch a drain finish it.
  server.get('/__fault/slow', async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 120_000);
    await sleep(ms);
    sendJson(res, 200, { fault: 'slow', ms });
  });

  // A slow database statement (holds a pooled connection for ms milliseconds).
  server.get('/__fault/slow-query', async (req, res) => {
    const ms = numberParam(req, 'ms', 1000, 60_000);
    await db.select('SELECT SLEEP(?) AS slept', [ms / 1000]);
    sendJson(res, 200, { fault: 'slow-query', ms });
  });
}
