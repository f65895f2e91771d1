// Accounts: register, login, who-am-I.
import type { Server } from 'restify';
import { ConflictError, InvalidCredentialsError, TooManyRequestsError } from 'restify-errors';
import type { LoginGuard } from '../../auth/bruteForce';
import type { PasswordHasher } from '../../auth/passwords';
import type { TokenService } from '../../auth/tokens';
import { UsernameTakenError, type UserRepository } from '../../store/users';
import type { Logger } from '../../../platform/logging/logger';
import { authenticatedUser } from '../bearerAuth';
import type { ClientIpResolver } from '../clientIp';
import { loginAttempts, rateLimitRejections, registrations } from '../../metrics/counters';
import { jsonBody } from '../jsonBody';
import { sendJson } from '../respond';
import { clientText } from '../../../platform/util/clientText';
import { loginBody, parseBody, registerBody } from '../validation';
import { messageOf } from '../../../platform/util/errors';

export interface AccountDeps {
  readonly users: UserRepository;
  readonly passwords: PasswordHasher;
  readonly tokens: TokenService;
  readonly maxBodyBytes: number;
  readonly log: Logger;
  readonly loginGuard: LoginGuard;
  readonly clientIp: ClientIpResolver;
}

export function registerAccountRoutes(server: Server, deps: AccountDeps): void {
  const { users, passwords, tokens, log, loginGuard, clientIp } = deps;
  const body = jsonBody(deps.maxBodyBytes);

  server.post('/api/register', body, async (req, res) => {
    const input = parseBody(registerBody, req.body);
    log.info(`Registration attempt for user: ${clientText(input.username, 64)}`);
    // A cheap check first spares a password hash for a name that is taken; the unique key
    // still decides when two registrations race.
    if (await users.exists(input.username)) throw taken(input.username, log);
    const passwordHash = await passwords.hash(input.password);
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
    log.info(`Login attempt for user: ${clientText(input.username, 64)}`);
    // Counted per pair and per IP before the password is checked (a wrong password stays counted),
    // so no number of parallel attempts gets past either limit.
    const block = await loginGuard.admit(input.username, ip);
    if (block) {
      log.warn(
        `Login blocked for user: ${clientText(input.username, 64)} from ${ip} (too many failed attempts ` +
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
      valid = user ? await passwords.verify(input.password, user.passwordHash) : await passwords.verifyDecoy(input.password);
    } catch (error) {
      // No password was judged (the database failed): the attempt must not count against the user or the IP.
      await loginGuard.refund(input.username, ip);
      throw error;
    }
    if (!user || !valid) {
      log.warn(`Login failed for user: ${clientText(input.username, 64)} (${user ? 'wrong password' : 'unknown user'})`);
      loginAttempts.inc({ result: user ? 'wrong_password' : 'unknown_user' });
      throw new InvalidCredentialsError('Invalid username or password');
    }
    await loginGuard.recordSuccess(input.username, ip);
    if (passwords.needsRehash(user.passwordHash)) await upgradeStoredHash(deps, user, input.password);
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
    const user = await authenticatedUser(req, res, { tokens, users, log, clientIp });
    sendJson(res, 200, {
      id: user.id,
      username: user.username,
      email: user.email,
      createdAt: user.createdAt.toISOString(),
    });
  });

}

/**
 * Replaces a hash made with an older scheme or a lower cost (scrypt, weaker argon2id) by one with
 * the current cost: only a login knows the password to do it. Best effort: the user is logged in
 * whatever happens, and the next login tries again.
 */
async function upgradeStoredHash(
  deps: Pick<AccountDeps, 'users' | 'passwords' | 'log'>,
  user: { readonly id: number; readonly username: string; readonly passwordHash: string },
  password: string,
): Promise<void> {
  try {
    const upgraded = await deps.passwords.hash(password);
    if (await deps.users.updatePasswordHash(user.id, upgraded, user.passwordHash)) {
      deps.log.info(`Password hash of user ${user.username} (id ${user.id}) upgraded to the current parameters`);
    }
  } catch (error) {
    deps.log.warn(`Could not upgrade the password hash of user ${user.username} (id ${user.id}): ${messageOf(error)}`);
  }
}

function taken(username: string, log: Logger): ConflictError {
  log.warn(`Registration refused for user: ${clientText(username, 64)} (name taken)`);
  registrations.inc({ result: 'taken' });
  return new ConflictError('Username is already taken');
}
