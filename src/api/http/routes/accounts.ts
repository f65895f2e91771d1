// Accounts: register, login, who-am-I. The rules are the account service's; this file turns
// request bodies into its inputs and its outcomes into answers.
import type { Server } from 'restify';
import { BadRequestError, ConflictError, InvalidCredentialsError, TooManyRequestsError } from 'restify-errors';
import type { AccountService } from '../../accounts/service';
import type { TokenService } from '../../auth/tokens';
import type { UserRepository } from '../../store/users';
import type { Logger } from '../../../platform/logging/logger';
import { authenticatedUser } from '../bearerAuth';
import type { ClientIpResolver } from '../clientIp';
import { jsonBody } from '../jsonBody';
import type { ResponseWriter } from '../respond';
import type { ApiCounters } from '../../metrics/counters';
import { loginBody, parseBody, registerBody } from '../validation';

export interface AccountDeps {
  readonly accounts: AccountService;
  /** For /api/me: the bearer token and the account it names. */
  readonly users: UserRepository;
  readonly tokens: TokenService;
  readonly maxBodyBytes: number;
  readonly log: Logger;
  readonly clientIp: ClientIpResolver;
  readonly writer: Pick<ResponseWriter, 'sendJson'>;
  readonly counters: Pick<ApiCounters, 'authFailures'>;
}

export function registerAccountRoutes(server: Server, deps: AccountDeps): void {
  const { accounts, users, tokens, log, clientIp, writer, counters } = deps;
  const body = jsonBody(deps.maxBodyBytes);

  server.post('/api/register', body, async (req, res) => {
    const outcome = await accounts.register(parseBody(registerBody, req.body));
    switch (outcome.kind) {
      case 'created':
        writer.sendJson(res, 201, { id: outcome.user.id, username: outcome.user.username });
        return;
      case 'taken':
        throw new ConflictError('Username is already taken');
      case 'invalid':
        throw new BadRequestError(outcome.problem);
    }
  });

  server.post('/api/login', body, async (req, res) => {
    const outcome = await accounts.login(parseBody(loginBody, req.body), { ip: clientIp(req) });
    switch (outcome.kind) {
      case 'success':
        writer.sendJson(res, 200, {
          token: outcome.token,
          expiresIn: outcome.expiresIn,
          user: { id: outcome.user.id, username: outcome.user.username },
        });
        return;
      case 'invalid_credentials':
        throw new InvalidCredentialsError('Invalid username or password');
      case 'throttled':
        res.setHeader('Retry-After', String(outcome.retryAfterSeconds));
        throw new TooManyRequestsError('Too many failed login attempts; try again later');
    }
  });

  server.get('/api/me', async (req, res) => {
    const user = await authenticatedUser(req, res, { tokens, users, log, clientIp, counters });
    writer.sendJson(res, 200, {
      id: user.id,
      username: user.username,
      email: user.email,
      createdAt: user.createdAt.toISOString(),
    });
  });
}
