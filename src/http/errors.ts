// The one error envelope. Whatever went wrong and whatever the client's Accept header says,
// the answer is `{"code","message","requestId"}` in JSON, logged once with the request id.
import type { Request, Response } from 'restify';
import {
  HttpError,
  InternalServerError,
  ServiceUnavailableError,
} from 'restify-errors';
import { DatabaseUnavailableError } from '../db/errors';
import type { Logger } from '../logger';
import { asError } from '../util/errors';
import { requestIdOf, sendJson } from './respond';

export interface ErrorEnvelope {
  readonly code: string;
  readonly message: string;
  readonly requestId: string;
}

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 2;

/** Safe texts for 5xx answers: an internal message never leaves the process. */
const SERVER_ERROR_MESSAGES: Record<number, string> = {
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service temporarily unavailable; try again shortly',
  504: 'Gateway timeout',
};

/** 5xx errors made here, whose message was written for clients. */
const publicServerErrors = new WeakSet<HttpError>();

/** A 5xx whose message is safe to show, unlike one that wraps something internal. */
function publicServerError<T extends HttpError>(error: T): T {
  publicServerErrors.add(error);
  return error;
}

/** Turns anything thrown into the HTTP error the client will see. */
function toHttpError(error: unknown): HttpError {
  if (error instanceof DatabaseUnavailableError) {
    return publicServerError(new ServiceUnavailableError('Database unavailable; try again shortly'));
  }
  if (error instanceof HttpError && typeof error.statusCode === 'number') return error;
  return new InternalServerError(SERVER_ERROR_MESSAGES[500] ?? 'Internal server error');
}

function envelopeOf(httpError: HttpError, requestId: string): ErrorEnvelope {
  const status = httpError.statusCode;
  const code = httpError.body?.code ?? httpError.code ?? 'Error';
  const message =
    status >= 500 && !publicServerErrors.has(httpError)
      ? (SERVER_ERROR_MESSAGES[status] ?? 'Server error')
      : (httpError.body?.message ?? httpError.message);
  return { code, message, requestId };
}

/**
 * Answers `error` as the envelope and logs it: 5xx other than 503 at ERROR with the stack of
 * what was thrown, everything else at WARN on one line.
 */
export function sendError(req: Request, res: Response, error: unknown, log: Logger): void {
  const httpError = toHttpError(error);
  const requestId = requestIdOf(req, res);
  const envelope = envelopeOf(httpError, requestId);
  const status = httpError.statusCode;
  const where = `${req.method} ${req.path()}`;

  if (status >= 500 && status !== 503) {
    log.error(`Request ${requestId} ${where} failed with ${status} ${envelope.code}`, asError(error));
  } else {
    const reason = status === 503 && error instanceof Error ? ` (${error.message})` : '';
    log.warn(`Request ${requestId} ${where} answered ${status} ${envelope.code}: ${envelope.message}${reason}`);
  }

  if (res.headersSent) return;
  const headers: Record<string, string> = {};
  if (status === 503 && !res.getHeader('Retry-After')) headers['Retry-After'] = String(RETRY_AFTER_SECONDS);
  sendJson(res, status, envelope, headers);
}
