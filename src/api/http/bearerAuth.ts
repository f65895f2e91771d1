// Who sent a request: the user its bearer token names, or a 401 that says only "Authentication
// required", whatever went wrong. Telling a client *why* its token was refused (a bad signature,
// an algorithm, that the user is gone although the signature is good) helps only an attacker;
// the reason goes to the auth log and to resilient_api_auth_failures_total{reason} instead.
import type { Request, Response } from 'restify';
import { UnauthorizedError } from 'restify-errors';
import { InvalidTokenError, type TokenService } from '../auth/tokens';
import type { User, UserRepository } from '../store/users';
import type { Logger } from '../../platform/logging/logger';
import type { ApiCounters, AuthFailureReason } from '../metrics/counters';
import { clientText } from '../../platform/util/clientText';
import type { ClientIpResolver } from './clientIp';

/** The one message of every authentication failure. */
export const AUTHENTICATION_REQUIRED = 'Authentication required';

/**
 * RFC 6750 §3: a request without credentials gets the bare challenge; a token that was presented
 * and refused gets error="invalid_token", with no description that would say why.
 */
export const BEARER_CHALLENGE = 'Bearer realm="resilient-api"';
export const INVALID_TOKEN_CHALLENGE = `${BEARER_CHALLENGE}, error="invalid_token"`;

export interface BearerAuthDeps {
  readonly tokens: TokenService;
  readonly users: UserRepository;
  /** The auth category. */
  readonly log: Logger;
  readonly clientIp: ClientIpResolver;
  readonly counters: Pick<ApiCounters, 'authFailures'>;
}

/** What an authentication scheme's name looks like (Basic, Digest, Negotiate, AWS4-HMAC-SHA256). */
const SCHEME_NAME = /^[A-Za-z][A-Za-z0-9-]{0,19}$/;

class AuthenticationFailure {
  constructor(
    readonly reason: AuthFailureReason,
    readonly detail: string,
  ) {}
}

/** The token of an `Authorization: Bearer <token>` header (scheme in any case, one space). */
function bearerToken(header: string | undefined): string | AuthenticationFailure {
  if (header === undefined || header === '') return new AuthenticationFailure('missing', 'no Authorization header');
  const space = header.indexOf(' ');
  const scheme = space === -1 ? header : header.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    // The scheme's name only when it is one ("Basic credentials"): a header with no scheme may be
    // a bare secret, and none of it may reach the log.
    const named = space !== -1 && SCHEME_NAME.test(scheme);
    return new AuthenticationFailure('missing', named ? `${clientText(scheme, 20)} credentials, not Bearer` : 'not a Bearer credential');
  }
  if (space === -1) return new AuthenticationFailure('malformed', 'Bearer with no token');
  // Exactly what follows the one space: tokens.verify() refuses anything but the token itself.
  return header.slice(space + 1);
}

/**
 * The user the request's bearer token names. Otherwise throws a 401 `Authentication required`
 * with its WWW-Authenticate challenge, after logging and counting the reason.
 */
export async function authenticatedUser(req: Request, res: Response, deps: BearerAuthDeps): Promise<User> {
  const token = bearerToken(req.headers.authorization);
  if (token instanceof AuthenticationFailure) throw refuse(req, res, deps, token);
  let userId: number;
  try {
    ({ userId } = await deps.tokens.verify(token));
  } catch (error) {
    if (!(error instanceof InvalidTokenError)) throw error;
    throw refuse(req, res, deps, new AuthenticationFailure(error.reason, error.detail));
  }
  // A database failure here is a 503, not a refusal: it propagates.
  const user = await deps.users.findById(userId);
  if (!user) throw refuse(req, res, deps, new AuthenticationFailure('unknown_user', `user id ${userId} no longer exists`));
  return user;
}

function refuse(req: Request, res: Response, deps: BearerAuthDeps, failure: AuthenticationFailure): UnauthorizedError {
  const presented = failure.reason !== 'missing';
  // No credentials is what every anonymous client does (INFO); a refused token is worth a look (WARN).
  const line =
    `Authentication refused (${failure.reason}: ${failure.detail}) for ` +
    `${clientText(req.method, 16)} ${clientText(req.path(), 200)} from ${deps.clientIp(req)}`;
  if (presented) deps.log.warn(line);
  else deps.log.info(line);
  deps.counters.authFailures.inc({ reason: failure.reason });
  res.setHeader('WWW-Authenticate', presented ? INVALID_TOKEN_CHALLENGE : BEARER_CHALLENGE);
  return new UnauthorizedError(AUTHENTICATION_REQUIRED);
}
