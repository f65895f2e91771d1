// Which database failures are worth another attempt, and which of those are safe to repeat.
import { messageOf, NamedError } from '../util/errors';

/** Where in an attempt a failure happened: before the statement was sent, or after. */
export type FailurePhase = 'connect' | 'execute' | 'commit';

/** The database is known to be down (the circuit is open) or the pool is closing. */
export class DatabaseUnavailableError extends NamedError {
  readonly code = 'DB_UNAVAILABLE';
  constructor(message = 'Database unavailable', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A query, or the wait for a pooled connection, outlived its bound. */
export class DatabaseTimeoutError extends NamedError {
  constructor(
    readonly code: 'DB_QUERY_TIMEOUT' | 'DB_POOL_TIMEOUT',
    message: string,
  ) {
    super(message);
  }
}

/** Failures of the connection or of the server's resources that may pass by themselves. */
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'DB_QUERY_TIMEOUT',
  'DB_POOL_TIMEOUT',
]);

/** The server has undone the statement (or the whole transaction) itself: repeating is safe. */
const ROLLED_BACK_CODES: ReadonlySet<string> = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

/**
 * The service's tables (or its database) are not there: a restore is replacing them, or someone
 * dropped them. Not a bug in the request, and not for ever: answered 503 like an outage.
 */
const SCHEMA_MISSING_CODES: ReadonlySet<string> = new Set(['ER_NO_SUCH_TABLE', 'ER_BAD_DB_ERROR']);

export function errorCode(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') {
    return error.code;
  }
  return error instanceof Error ? error.name : 'UNKNOWN';
}

/** The error's message, led by its code unless the message already names it. */
export function describeDbError(error: unknown): string {
  const code = errorCode(error);
  const message = messageOf(error);
  return message.includes(code) ? message : `${code}: ${message}`;
}

export function isSchemaMissing(error: unknown): boolean {
  return SCHEMA_MISSING_CODES.has(errorCode(error));
}

export function isTransient(error: unknown): boolean {
  return TRANSIENT_CODES.has(errorCode(error));
}

/**
 * A transient failure is retried only when repeating cannot apply a write twice:
 * it happened before the statement left (connect), the statement only reads,
 * or the server reports it rolled the work back.
 */
export function isSafeToRetry(error: unknown, phase: FailurePhase, idempotent: boolean): boolean {
  if (!isTransient(error)) return false;
  if (phase === 'connect' || ROLLED_BACK_CODES.has(errorCode(error))) return true;
  return phase === 'execute' && idempotent;
}
