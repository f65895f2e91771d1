// Every response of the service leaves through sendJson: always JSON, and while the process
// drains, with `Connection: close` so clients move to another worker instead of reusing a
// socket that is about to close, and always with the security headers.
import type { ServerResponse } from 'node:http';
import type { Request, Response } from 'restify';
import { applySecurityHeaders } from './securityHeaders';

let closeAfterResponse = false;

/** Set by the lifecycle when draining starts. */
export function closeConnectionsAfterResponses(): void {
  closeAfterResponse = true;
}

export function sendJson(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = prepareJson(res, body, headers);
  // sendRaw skips restify's content negotiation: JSON whatever the Accept header says.
  res.sendRaw(status, json);
}

/**
 * The same answer from restify's `first` chain, before restify has set the response up
 * (sendRaw needs that state): plain Node, same headers.
 */
export function sendJsonBeforeRouting(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const json = prepareJson(res, body, headers);
  res.statusCode = status;
  res.end(json);
}

/** Sets every header of a JSON answer (security ones first, so a route may override e.g. Cache-Control). */
function prepareJson(res: ServerResponse, body: unknown, headers: Record<string, string>): string {
  applySecurityHeaders(res);
  if (closeAfterResponse) res.setHeader('Connection', 'close');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  const json = JSON.stringify(body);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  return json;
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Takes the caller's X-Request-Id when it is a plain token (so ids follow a request across
 * services), otherwise makes one; echoes it in the response header.
 */
export function assignRequestId(req: Request, res: Response): void {
  const offered = req.headers['x-request-id'];
  const id = typeof offered === 'string' && CLIENT_ID.test(offered) ? offered : undefined;
  res.setHeader('X-Request-Id', req.id(id ?? crypto.randomUUID()));
}

export function requestIdOf(req: Request, res: Response): string {
  const header = res.getHeader('X-Request-Id');
  return typeof header === 'string' ? header : req.getId();
}
