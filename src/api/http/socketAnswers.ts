// Requests restify never sees, answered on the socket in the same envelope, with the same
// security headers, a request id, a request-log line and a count in the request metrics:
// - requests Node's parser refused (its 'clientError' event): 400, 408, 413, 431;
// - CONNECT (Node's 'connect' event; with no listener Node closes the socket without a word):
//   405 naming the path's methods when the target is a path the service has, else 501.
// As Node's own refusals do, nothing is written into an answer already under way on the
// connection (the raw bytes would land inside its body), and the connection is closed for good
// afterwards (destroyed, not half-closed: a request still held on it, by the rate limit for
// instance, cannot come back to write on it). Answers due to earlier pipelined requests on the
// connection go out first, then the refusal.
// The WARN line saying why is written once per client IP per minute (a flood of garbage
// connections is not a log flood); every refusal is still counted and goes to the request log,
// which samples it like any other request.
// And requests with an Upgrade header (h2c, websocket), which restify would hand to an
// 'upgrade' event nobody answers, are served as the ordinary requests they also are.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server as NodeServer, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { UNMATCHED_ROUTE, UNPARSED_ROUTE } from '../metrics/counters';
import type { Logger } from '../../platform/logging/logger';
import { clientText } from '../../platform/util/clientText';
import { OncePerInterval } from '../../platform/util/oncePerInterval';
import { normalizeAddress } from '../../platform/util/addresses';
import type { ClientIpResolver } from './clientIp';
import type { RouteMethods } from './methods';
import type { SocketAnswerObserver } from './observeRequests';
import { chooseRequestId } from './respond';
import type { HeaderPairs } from './securityHeaders';

export interface SocketAnswerDeps {
  readonly log: Logger;
  readonly observe: SocketAnswerObserver;
  readonly clientIp: ClientIpResolver;
  readonly routes: Pick<RouteMethods, 'allowedAt' | 'allMethods'>;
  /** The server speaks TLS: connections are timed from the end of the handshake. */
  readonly tls: boolean;
  /** The server's security headers (securityHeaderPairs), on these answers as on every other. */
  readonly securityHeaders: HeaderPairs;
}

const OPENED = Symbol('connection opened (performance.now())');
const REFUSED = Symbol('a refusal is under way on this connection');
/**
 * A connection of Node's HTTP server. `_httpMessage` is the response it is writing on it (or
 * null): Node's own refusals and its documentation of 'clientError' read it the same way.
 */
type ServerSocket = Duplex & { [OPENED]?: number; [REFUSED]?: true; _httpMessage?: ServerResponse | null };

/** Node's parser errors, by its code, as the answer they get. */
interface Refusal {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}
const REFUSALS: Readonly<Record<string, Refusal>> = {
  HPE_HEADER_OVERFLOW: { status: 431, code: 'RequestHeaderFieldsTooLarge', message: 'Request headers too large' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, code: 'PayloadTooLarge', message: 'Chunk extensions too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'RequestTimeout', message: 'Request took too long to arrive' },
};
const MALFORMED: Readonly<Refusal> = { status: 400, code: 'BadRequest', message: 'Malformed HTTP request' };

/**
 * How long the answers due to earlier pipelined requests on a connection get to go out before a
 * refusal behind them closes it without a word. The service answers in well under a second (a
 * request the rate limit holds, within a sync); this only bounds a stuck one.
 */
const EARLIER_ANSWERS_GRACE_MS = 10_000;
/** How long a written refusal gets to reach a client that does not read before the connection goes anyway. */
const FLUSH_GRACE_MS = 5_000;
/**
 * The WARN line about refusals, per client IP: one a minute (like the rate limit's refusals). At
 * most this many clients are remembered (some 100 bytes each): past it, the longest-unlogged is
 * forgotten and only gets its next line sooner.
 */
const WARN_INTERVAL_MS = 60_000;
const WARNED_CLIENTS = 10_000;

/** A WARN line about a client's refusal, written once per client per WARN_INTERVAL_MS. */
type ThrottledWarn = (ip: string, text: string) => void;

export function answerOnSocket(node: NodeServer, deps: SocketAnswerDeps): void {
  // A parser refusal has no request to date it: its time is counted from the connection's start
  // (exact for the usual case, a refusal of a connection's first request; for a slow client's 408
  // it is the time the client was given). One property per connection, nothing per request.
  node.on(deps.tls ? 'secureConnection' : 'connection', (socket: ServerSocket) => {
    socket[OPENED] = performance.now();
  });
  const warnings = new OncePerInterval(WARN_INTERVAL_MS, WARNED_CLIENTS);
  const warn: ThrottledWarn = (ip, text) => {
    const passage = warnings.take(ip);
    if (!passage.pass) return;
    const held = passage.held > 0 ? ` (${passage.held} more from ${ip} since its previous line, not logged)` : '';
    deps.log.warn(`${text}${held}`);
  };
  answerUnparsableRequests(node, deps, warn);
  answerConnect(node, deps, warn);
  // restify listens for 'upgrade' (to re-emit it, to nobody): without a listener Node serves
  // such a request as an ordinary one, which HTTP allows (the server may ignore Upgrade).
  node.removeAllListeners('upgrade');
}

function answerUnparsableRequests(node: NodeServer, deps: SocketAnswerDeps, warn: ThrottledWarn): void {
  node.on('clientError', (error: NodeJS.ErrnoException, socket: ServerSocket) => {
    // A client that left: no one to answer, nothing counted.
    if (error.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    // The parser stays failed: Node reports again each chunk that arrives after the refusal
    // (those bytes are read and dropped: closing with unread bytes would reset the connection,
    // and a reset can lose the answer before the client reads it). One refusal a connection,
    // and its answer is not cut short by the next report.
    if (socket[REFUSED] === true) return;
    socket[REFUSED] = true;
    // A connection already closing (an answer asked for it): nothing to add, nothing counted;
    // what that answer still has to send goes out first.
    if (!socket.writable) {
      closeConnection(socket);
      return;
    }
    const { status, code, message } = REFUSALS[error.code ?? ''] ?? MALFORMED;
    const requestId = randomUUID();
    const ip = normalizeAddress((socket as Partial<Socket>).remoteAddress ?? 'unknown');
    const reason = clientText(error.code ?? error.message, 100);
    whenFreeToAnswer(socket, (obstacle) => {
      if (obstacle === undefined) writeAnswer(socket, deps.securityHeaders, status, { code, message, requestId }, {});
      else closeConnection(socket);
      const opened = socket[OPENED];
      // Counted, with the status it was refused with, even when it could not be written: the
      // series counts the requests refused (garbage traffic); the WARN line tells the rest.
      deps.observe({
        method: undefined,
        route: UNPARSED_ROUTE,
        target: undefined,
        status,
        ms: opened === undefined ? 0 : performance.now() - opened,
        requestId,
        ip,
      });
      const outcome = obstacle === undefined ? `answered ${status} ${code}` : `closed the connection without its ${status} ${code}: ${obstacle}`;
      warn(ip, `Request ${requestId} could not be parsed (${reason}); ${outcome}`);
    });
  });
}

function answerConnect(node: NodeServer, deps: SocketAnswerDeps, warn: ThrottledWarn): void {
  node.on('connect', (req: IncomingMessage, socket: ServerSocket) => {
    const arrived = performance.now();
    // What the client sends after its CONNECT is read and dropped (see the parser refusals).
    socket.resume();
    const target = req.url ?? '';
    // CONNECT names a host:port, which is no path of this service; one that names a path gets 405.
    const allowed = deps.routes.allowedAt(target);
    const requestId = chooseRequestId(req);
    const ip = deps.clientIp(req);
    const [status, code, message, headers] =
      allowed === undefined
        ? [501, 'NotImplemented', 'CONNECT is not supported by this service', {}]
        : [405, 'MethodNotAllowed', 'CONNECT is not allowed', { Allow: allowed.join(', ') }];
    // Node has no response of its own for a CONNECT: any on the connection answers an earlier request.
    whenFreeToAnswer(socket, (obstacle) => {
      if (obstacle === undefined) writeAnswer(socket, deps.securityHeaders, status, { code, message, requestId }, headers);
      else closeConnection(socket);
      deps.observe({
        method: req.method,
        // Like restify's 405s, no route matched: counted and logged as unmatched.
        route: UNMATCHED_ROUTE,
        target,
        status,
        ms: performance.now() - arrived,
        requestId,
        ip,
      });
      const outcome = obstacle === undefined ? `answered ${status} ${code}: ${message}` : `closed without its ${status} ${code}: ${obstacle}`;
      warn(ip, `Request ${requestId} CONNECT ${clientText(target, 200)} ${outcome}`);
    });
  });
}

/**
 * Calls `then` once the connection may take an answer written on it (undefined), or with why it
 * may not. Node writes the answers of pipelined requests in order: those due to earlier requests
 * (their requests complete) go out first. An answer to the very request refused (its body still
 * arriving: a 408, a malformed chunk) is replaced while it has not begun, as Node does; once it
 * has, nothing can be added to it.
 */
function whenFreeToAnswer(socket: ServerSocket, then: (obstacle: string | undefined) => void): void {
  let settled = false;
  let grace: NodeJS.Timeout | undefined;
  const settle = (obstacle: string | undefined): void => {
    if (settled) return;
    settled = true;
    clearTimeout(grace);
    socket.off('close', onClose);
    then(obstacle);
  };
  const onClose = (): void => settle('the client closed it first');
  const check = (): void => {
    if (settled) return;
    const inFlight = socket._httpMessage;
    // An earlier answer asked for the connection to close (Connection: close): it is closing.
    if (!socket.writable) return settle('an earlier answer closed it');
    if (inFlight === null || inFlight === undefined) return settle(undefined);
    if (!inFlight.req.complete) return settle(inFlight.headersSent ? 'an answer was already under way on it' : undefined);
    grace ??= setTimeout(() => settle(`the answers due before it took over ${EARLIER_ANSWERS_GRACE_MS} ms`), EARLIER_ANSWERS_GRACE_MS).unref();
    // Node's own 'finish' listener, added first, hands the connection to the next answer before this runs.
    inFlight.once('finish', check);
  };
  socket.once('close', onClose);
  check();
}

/** The envelope as a whole HTTP/1.1 answer, the last thing on the connection. */
function writeAnswer(
  socket: Duplex,
  securityHeaders: HeaderPairs,
  status: number,
  envelope: { code: string; message: string; requestId: string },
  headers: Readonly<Record<string, string>>,
): void {
  const body = JSON.stringify(envelope);
  const extra = [...securityHeaders, ...Object.entries(headers)].map(([name, value]) => `${name}: ${value}\r\n`).join('');
  closeConnection(
    socket,
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${envelope.requestId}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}

/**
 * Ends the connection (after `last`, when given) and destroys it once what was written is out,
 * as Node does after its own refusals (socket.destroySoon): not left half-open, so nothing still
 * held on it (a request the rate limit holds) can write on it later. A client that does not
 * read gets FLUSH_GRACE_MS.
 */
function closeConnection(socket: Duplex, last?: string): void {
  const stuck = setTimeout(() => socket.destroy(), FLUSH_GRACE_MS).unref();
  // Called once finished, or at once with an error if the connection already ended or broke.
  const destroy = (): void => {
    clearTimeout(stuck);
    socket.destroy();
  };
  if (last === undefined) socket.end(destroy);
  else socket.end(last, destroy);
}
