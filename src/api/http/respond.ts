// Every response of the service leaves through sendJson (or sendBody, for the metrics text and
// the status page), where it is observed for metrics and the request log; while the process
// drains, with `Connection: close` so clients move to another worker instead of reusing a
// socket that is about to close, and always with the security headers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'restify';
import { PROBE_PATHS, pathOf } from './paths';
import { applySecurityHeaders } from './securityHeaders';

let closeAfterResponse = false;

/** Set by the lifecycle when draining starts. */
export function closeConnectionsAfterResponses(): void {
  closeAfterResponse = true;
}

/** Sees every response as it leaves: metrics and the request log (installed by the server). */
export type ResponseObserver = (res: Response, status: number) => void;
let observer: ResponseObserver | undefined;

export function observeResponses(next: ResponseObserver | undefined): void {
  observer = next;
}

export function sendJson(res: Response, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendBody(res, status, 'application/json', JSON.stringify(body), headers);
}

/** For the few answers that are not JSON (the metrics text, the status page). */
export function sendBody(
  res: Response,
  status: number,
  contentType: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  setHeaders(res, contentType, body, headers);
  // sendRaw skips restify's content negotiation: JSON whatever the Accept header says.
  res.sendRaw(status, body);
  observer?.(res, status);
}

/**
 * For a `first` handler: restify has not set the request up yet, so its response methods
 * (sendRaw needs res.log) cannot be used; Node's own can. Same headers.
 */
export function sendJsonBeforeRouting(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const json = JSON.stringify(body);
  setHeaders(res, 'application/json', json, headers);
  res.statusCode = status;
  res.end(json);
  // Node's response object, which restify has already given its prototype: the observer's view.
  observer?.(res as Response, status);
}

/** An answer without a body (204 to OPTIONS): the same headers but no Content-Type or Content-Length. */
export function sendEmpty(res: Response, status: number, headers: Record<string, string> = {}): void {
  setCommonHeaders(res, headers);
  res.sendRaw(status, '');
  observer?.(res, status);
}

/** sendEmpty for a `first` handler (see sendJsonBeforeRouting). */
export function sendEmptyBeforeRouting(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  setCommonHeaders(res, headers);
  res.statusCode = status;
  res.end();
  observer?.(res as Response, status);
}

/** Every header of an answer; the security ones first, so a route may override one (the status page's CSP). */
function setHeaders(res: ServerResponse, contentType: string, body: string, headers: Record<string, string>): void {
  setCommonHeaders(res, headers);
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
}

function setCommonHeaders(res: ServerResponse, headers: Record<string, string>): void {
  applySecurityHeaders(res);
  if (closeAfterResponse) res.setHeader('Connection', 'close');
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
}

/** An X-Request-Id the caller may choose (anything else is replaced); the OpenAPI document quotes it. */
export const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Takes the caller's X-Request-Id when it is a plain token (so ids follow a request across
 * services), otherwise makes one; echoes it in the response header. Probes get one only if an
 * error needs it (requestIdOf): a header and a UUID cost about 4% of /health throughput.
 */
export function assignRequestId(req: Request, res: Response): void {
  if (PROBE_PATHS.has(pathOf(req.url))) return;
  setRequestId(req, res);
}

/** The caller's X-Request-Id when it is a plain token, else a new one (for answers written on the socket too). */
export function chooseRequestId(req: IncomingMessage): string {
  const offered = req.headers['x-request-id'];
  return typeof offered === 'string' && CLIENT_ID.test(offered) ? offered : crypto.randomUUID();
}

function setRequestId(req: IncomingMessage, res: ServerResponse): string {
  const id = chooseRequestId(req);
  // Kept in the header only: restify's own req.id() asserts and stores it again, per request.
  if (!res.headersSent) res.setHeader('X-Request-Id', id);
  return id;
}

/** The request's id; made now (and echoed, if the answer has not left) when it has none yet. */
export function requestIdOf(req: IncomingMessage, res: ServerResponse): string {
  const header = res.getHeader('X-Request-Id');
  return typeof header === 'string' ? header : setRequestId(req, res);
}
