// Accounts: register, login, who-am-I.
import type { Request, Response, Server } from 'restify';
import { ConflictError, InvalidCredentialsError, TooManyRequestsError, UnauthorizedError } from 'restify-errors';
import type { LoginGuard } from '../../auth/bruteForce';
import { hashPassword, verifyDecoy, verifyPassword } from '../../auth/passwords';
import { InvalidTokenError, type TokenService } from '../../auth/tokens';
import { UsernameTakenError, type UserRepository } from '../../db/users';
import type { Logger } from '../../logger';
import type { ClientIpResolver } from '../clientIp';
import { loginAttempts, rateLimitRejections, registrations } from '../../metrics/counters';
import { jsonBody } from '../jsonBody';
import { sendJson } from '../respond';
import { loginBody, parseBody, registerBody } from '../validation';

export interface AccountDeps {
  readonly users: UserRepository;
  readonly tokens: TokenService;
  readonly maxBodyBytes: number;
  readonly log: Logger;
  readonly loginGuard: LoginGuard;
  readonly clientIp: ClientIpResolver;
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i;

export function registerAccountRoutes(server: Server, deps: AccountDeps): void {
  const { users, tokens, log, loginGuard, clientIp } = deps;
  const body = jsonBody(deps.maxBodyBytes);

  server.post('/api/register', body, async (req, res) => {
    const input = parseBody(registerBody, req.body);
    log.info(`Registration attempt for user: ${input.username}`);
    // A cheap check first spares a password hash for a name that is taken; the unique key
    // still decides when two registrations race.
    if (await users.exists(input.username)) throw taken(input.username, log);
    const passwordHash = await hashPassword(input.password);
    try {
      const user = await users.create({ username: input.username, email: input.email ?? null, passwordHash });
      log.info(`User registered: ${user.username} (id ${user.id})`);
      registrations.inc({ result: 'created' });
      sendJson(res, 201, { id: user.id, username: user.username });
    } catch (error) {
      if (error instanceof UsernameTakenError) throw taken(input.username, log);
      throw error;
    }
  });

  server.post('/api/login', body, async (req, res) => {
    const input = parseBody(loginBody, req.body);
    const ip = clientIp(req);
    log.info(`Login attempt for user: ${input.username}`);
    // Counted before the password is checked, so no number of parallel attempts gets past the limit.
    const block = await loginGuard.admit(input.username, ip);
    if (block) {
      log.warn(
        `Login blocked for user: ${input.username} from ${ip} (too many failed attempts ` +
          `${block.scope === 'account' ? 'for this user from this address' : 'from this address today'}); ` +
          `retry after ${block.retryAfterSeconds} s`,
      );
      res.setHeader('Retry-After', String(block.retryAfterSeconds));
      loginAttempts.inc({ result: 'throttled' });
      rateLimitRejections.inc({ limiter: 'login' });
      throw new TooManyRequestsError('Too many failed login attempts; try again later');
    }
    let user;
    let valid;
    try {
      user = await users.findByUsername(input.username);
      valid = user ? await verifyPassword(input.password, user.passwordHash) : await verifyDecoy(input.password);
    } catch (error) {
      // No password was judged (the database failed): the attempt must not count against the user.
      await loginGuard.refund(input.username, ip);
      throw error;
    }
    if (!user || !valid) {
      log.warn(`Login failed for user: ${input.username} (${user ? 'wrong password' : 'unknown user'})`);
      loginAttempts.inc({ result: user ? 'wrong_password' : 'unknown_user' });
      await loginGuard.recordFailure(ip);
      throw new InvalidCredentialsError('Invalid username or password');
    }
    await loginGuard.recordSuccess(input.username, ip);
    const token = await tokens.issue({ userId: user.id, username: user.username });
    log.info(`Login successful for user: ${user.username}`);
    loginAttempts.inc({ result: 'success' });
    sendJson(res, 200, {
      token,
      expiresIn: tokens.ttlSeconds,
      user: { id: user.id, username: user.username },
    });
  });

  server.get('/api/me', async (req, res) => {
    const token = bearerToken(req, res);
    let claims;
    try {
      claims = await tokens.verify(token);
    } catch (error) {
      throw unauthorized(res, error instanceof InvalidTokenError ? error.reason : 'invalid token');
    }
    const user = await users.findById(claims.userId);
    if (!user) throw unauthorized(res, 'user no longer exists');
    sendJson(res, 200, {
      id: user.id,
      username: user.username,
      email: user.email,
      createdAt: user.createdAt.toISOString(),
    });
  });

}

function bearerToken(req: Request, res: Response): string {
  const match = BEARER.exec(req.headers.authorization ?? '');
  if (!match?.[1]) throw unauthorized(res, 'missing bearer token');
  return match[1];
}

function taken(username: string, log: Logger): ConflictError {
  log.warn(`Registration refused for user: ${username} (name taken)`);
  registrations.inc({ result: 'taken' });
  return new ConflictError('Username is already taken');
}

function unauthorized(res: Response, reason: string): Error {
  res.setHeader('WWW-Authenticate', 'Bearer realm="resilient-api", error="invalid_token"');
  return new UnauthorizedError(`Authentication required (${reason})`);
}
