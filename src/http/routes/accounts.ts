// Accounts: register, login, who-am-I.
import type { Request, Response, Server } from 'restify';
import { ConflictError, InvalidCredentialsError, UnauthorizedError } from 'restify-errors';
import { hashPassword, verifyDecoy, verifyPassword } from '../../auth/passwords';
import { InvalidTokenError, type TokenService } from '../../auth/tokens';
import { UsernameTakenError, type UserRepository } from '../../db/users';
import type { Logger } from '../../logger';
import { loginAttempts, registrations } from '../../metrics/counters';
import { jsonBody } from '../jsonBody';
import { sendJson } from '../respond';
import { loginBody, parseBody, registerBody } from '../validation';

export interface AccountDeps {
  readonly users: UserRepository;
  readonly tokens: TokenService;
  readonly maxBodyBytes: number;
  readonly log: Logger;
}

const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]+)$/i;

export function registerAccountRoutes(server: Server, deps: AccountDeps): void {
  const { users, tokens, log } = deps;
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
    log.info(`Login attempt for user: ${input.username}`);
    const user = await users.findByUsername(input.username);
    const valid = user ? await verifyPassword(input.password, user.passwordHash) : await verifyDecoy(input.password);
    if (!user || !valid) {
      log.warn(`Login failed for user: ${input.username} (${user ? 'wrong password' : 'unknown user'})`);
      loginAttempts.inc({ result: user ? 'wrong_password' : 'unknown_user' });
      throw new InvalidCredentialsError('Invalid username or password');
    }
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
