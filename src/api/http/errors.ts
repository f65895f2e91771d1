// The one error envelope. Whatever went wrong and whatever the client's Accept header says,
// the answer is `{"code","message","requestId"}` in JSON, logged once with the request id.
import type { Request, Response } from 'restify';
import {
  HttpError,
  InternalServerError,
  ServiceUnavailableError,
} from 'restify-errors';
import { HashQueueFullError } from '../auth/hashPool';
import { DatabaseUnavailableError } from '../../platform/db/errors';
import type { Logger } from '../../platform/logging/logger';
import { clientText } from '../../platform/util/clientText';
import { asError } from '../../platform/util/errors';
import { requestIdOf, type ResponseWriter } from './respond';

export interface ErrorEnvelope {
  readonly code: string;
  readonly message: string;
  readonly requestId: string;
}

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 2;

/** Safe texts for 5xx answers: an internal message never leaves the process. */
const SERVER_ERROR_MESSAGES: Readonly<Record<number, string>> = {
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service temporarily unavailable; try again shortly',
  504: 'Gateway timeout',
};

/** Marks a 5xx made here, whose message was written for clients. */
const PUBLIC_MESSAGE = Symbol('a server error whose message was written for clients');
type MarkedError = HttpError & { readonly [PUBLIC_MESSAGE]?: true };

/** A 5xx whose message is safe to show, unlike one that wraps something internal. */
function publicServerError<T extends HttpError>(error: T): T {
  // Read-only and not enumerable: the mark travels with the error and never shows in it.
  Object.defineProperty(error, PUBLIC_MESSAGE, { value: true });
  return error;
}

/** Turns anything thrown into the HTTP error the client will see. */
function toHttpError(error: unknown): HttpError {
  if (error instanceof DatabaseUnavailableError) {
    return publicServerError(new ServiceUnavailableError('Database unavailable; try again shortly'));
  }
  if (error instanceof HashQueueFullError) {
    return publicServerError(new ServiceUnavailableError('Too many password checks in progress; try again shortly'));
  }
  if (error instanceof HttpError && typeof error.statusCode === 'number') return error;
  return new InternalServerError(SERVER_ERROR_MESSAGES[500] ?? 'Internal server error');
}

/** Bound on a 4xx message: they may quote what the client sent (a path, field names). */
const MAX_CLIENT_MESSAGE_CHARS = 1000;
/** Bound on the request path quoted in a 404 and in log lines. */
const MAX_PATH_CHARS = 200;

function envelopeOf(httpError: HttpError, requestId: string, path: string): ErrorEnvelope {
  const status = httpError.statusCode;
  const code = httpError.body?.code ?? httpError.code ?? 'Error';
  if (status >= 500 && (httpError as MarkedError)[PUBLIC_MESSAGE] !== true) {
    return { code, message: SERVER_ERROR_MESSAGES[status] ?? 'Server error', requestId };
  }
  // restify's router says "<path> does not exist", the whole path quoted: quote it bounded.
  const message = status === 404 && httpError.message === `${path} does not exist`
    ? `${clientText(path, MAX_PATH_CHARS)} does not exist`
    : clientText(httpError.body?.message ?? httpError.message, MAX_CLIENT_MESSAGE_CHARS);
  return { code, message, requestId };
}

/**
 * Answers `error` as the envelope and logs it: 5xx other than 503 at ERROR with the stack of
 * what was thrown, everything else at WARN on one line.
 */
export function sendError(req: Request, res: Response, error: unknown, log: Logger, writer: ResponseWriter): void {
  const httpError = toHttpError(error);
  const requestId = requestIdOf(req, res);
  const path = req.path();
  const envelope = envelopeOf(httpError, requestId, path);
  const status = httpError.statusCode;
  const where = `${clientText(req.method, 16)} ${clientText(path, MAX_PATH_CHARS)}`;

  if (status >= 500 && status !== 503) {
    log.error(`Request ${requestId} ${where} failed with ${status} ${envelope.code}`, asError(error));
  } else {
    const reason = status === 503 && error instanceof Error ? ` (${clientText(error.message, MAX_CLIENT_MESSAGE_CHARS)})` : '';
    log.warn(`Request ${requestId} ${where} answered ${status} ${envelope.code}: ${envelope.message}${reason}`);
  }

  if (res.headersSent) return;
  const headers: Record<string, string> = {};
  if (status === 503 && !res.getHeader('Retry-After')) headers['Retry-After'] = String(RETRY_AFTER_SECONDS);
  writer.sendJson(res, status, envelope, headers);
}
