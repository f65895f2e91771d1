// Every response of the service leaves through its server's ResponseWriter: sendJson (or
// sendBody, for the metrics text and the status page), where it is observed for metrics and the
// request log; while the process drains, with `Connection: close` so clients move to another
// worker instead of reusing a socket that is about to close, and always with the security headers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'restify';
import { PROBE_PATHS, pathOf } from './paths';
import type { HeaderPairs } from './securityHeaders';

/** Sees every response as it leaves: metrics and the request log (observeRequests.ts). */
export type ResponseObserver = (res: Response, status: number) => void;

/** Headers a route adds to one answer (set after the security headers, so it may override one). */
export type ExtraHeaders = Readonly<Record<string, string>>;
/** Shared by every answer without extra headers: no object made per answer. */
const NO_HEADERS: ExtraHeaders = Object.freeze({});

/** Writes the answers of one server; made once, by createServer, and handed to what answers. */
export class ResponseWriter {
  /** Set once draining starts; never cleared (a draining process does not come back). */
  private closeAfterResponse = false;

  /** The security headers as writeHead's flat list: [name, value, name, value, …]. */
  private readonly securityHeaderList: readonly string[];

  constructor(
    private readonly securityHeaders: HeaderPairs,
    private readonly observe: ResponseObserver,
  ) {
    this.securityHeaderList = Object.freeze(securityHeaders.flatMap(([name, value]) => [name, value]));
  }

  /** Called when draining starts: every answer from now on asks the client to close the connection. */
  closeConnectionsAfterResponses(): void {
    this.closeAfterResponse = true;
  }

  sendJson(res: Response, status: number, body: unknown, headers: ExtraHeaders = NO_HEADERS): void {
    this.sendBody(res, status, 'application/json', JSON.stringify(body), headers);
  }

  /** For the few answers that are not JSON (the metrics text, the status page). */
  sendBody(res: Response, status: number, contentType: string, body: string, headers: ExtraHeaders = NO_HEADERS): void {
    if (headers === NO_HEADERS) {
      this.writeWhole(res, status, contentType, body);
    } else {
      this.setHeaders(res, contentType, body, headers);
      // sendRaw skips restify's content negotiation: JSON whatever the Accept header says.
      res.sendRaw(status, body);
    }
    this.observe(res, status);
  }

  /**
   * The common answer, written with Node's writeHead(status, [name, value, …]) and end(body):
   * when no header was set before (a probe's answer), Node writes the list as it is instead of
   * storing each header in the response's header map first; measured on /health with one worker,
   * 56 → 49 µs of CPU per request (17.4 k → 20.1 k req/s). The request id joins the list for the
   * same reason (it is kept on the response, not set as a header, until the answer is written). A
   * header set earlier (X-RateLimit-*) makes Node merge the list into the map, as setHeader would:
   * the same answer.
   * Node leaves the body out of a HEAD answer, as restify's sendRaw does.
   */
  private writeWhole(res: Response, status: number, contentType: string, body: string): void {
    const head = [...this.securityHeaderList, 'Content-Type', contentType, 'Content-Length', String(Buffer.byteLength(body))];
    const id = (res as Identified)[REQUEST_ID];
    if (id !== undefined) head.push('X-Request-Id', id);
    if (this.closeAfterResponse) head.push('Connection', 'close');
    // restify's own mark of an answered response (sendRaw sets it), so its error path never answers twice.
    (res as Response & { _sent?: boolean })._sent = true;
    res.writeHead(status, head);
    res.end(body);
  }

  /**
   * For a `first` handler: restify has not set the request up yet, so its response methods
   * (sendRaw needs res.log) cannot be used; Node's own can. Same headers.
   */
  sendJsonBeforeRouting(res: ServerResponse, status: number, body: unknown, headers: ExtraHeaders = NO_HEADERS): void {
    const json = JSON.stringify(body);
    this.setHeaders(res, 'application/json', json, headers);
    res.statusCode = status;
    res.end(json);
    // Node's response object, which restify has already given its prototype: the observer's view.
    this.observe(res as Response, status);
  }

  /** An answer without a body (204 to OPTIONS): the same headers but no Content-Type or Content-Length. */
  sendEmpty(res: Response, status: number, headers: ExtraHeaders = NO_HEADERS): void {
    this.setCommonHeaders(res, headers);
    res.sendRaw(status, '');
    this.observe(res, status);
  }

  /** sendEmpty for a `first` handler (see sendJsonBeforeRouting). */
  sendEmptyBeforeRouting(res: ServerResponse, status: number, headers: ExtraHeaders = NO_HEADERS): void {
    this.setCommonHeaders(res, headers);
    res.statusCode = status;
    res.end();
    this.observe(res as Response, status);
  }

  /** Every header of an answer; the security ones first, so a route may override one (the status page's CSP). */
  private setHeaders(res: ServerResponse, contentType: string, body: string, headers: ExtraHeaders): void {
    this.setCommonHeaders(res, headers);
    res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', Buffer.byteLength(body));
  }

  private setCommonHeaders(res: ServerResponse, headers: ExtraHeaders): void {
    for (const [name, value] of this.securityHeaders) res.setHeader(name, value);
    const id = (res as Identified)[REQUEST_ID];
    if (id !== undefined) res.setHeader('X-Request-Id', id);
    if (this.closeAfterResponse) res.setHeader('Connection', 'close');
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  }
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

/**
 * The request's id, kept on its response until the answer is written: the ResponseWriter puts it
 * in the X-Request-Id header of every answer (writeWhole's header list, or setHeader), so a
 * request that has one is never answered without it.
 */
const REQUEST_ID = Symbol('request id');
type Identified = ServerResponse & { [REQUEST_ID]?: string };

function setRequestId(req: IncomingMessage, res: ServerResponse): string {
  const id = chooseRequestId(req);
  // Kept here only: restify's own req.id() asserts and stores it again, per request.
  (res as Identified)[REQUEST_ID] = id;
  return id;
}

/** The request's id; made now when it has none yet (echoed only if its answer has not been written). */
export function requestIdOf(req: IncomingMessage, res: ServerResponse): string {
  return (res as Identified)[REQUEST_ID] ?? setRequestId(req, res);
}
