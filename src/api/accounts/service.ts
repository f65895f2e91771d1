// The account rules: who may register under which name, and how a login is judged, counted
// against brute force and logged. No HTTP here: a caller (the accounts routes) turns the outcomes
// into answers, and a test drives the rules in-process with stand-ins for each dependency.
//
// Failures of the database, the limiter store or the hash queue are thrown, not returned: they are
// no verdict on the account, and the caller answers them as it answers any outage (503).
import type { Counter } from 'prom-client';
import type { LoginBlock, LoginGuard } from '../auth/bruteForce';
import type { PasswordHasher } from '../auth/passwords';
import type { TokenService } from '../auth/tokens';
import { displayUsername, isRegistrableUsername, USERNAME_RULE } from '../auth/username';
import { UsernameTakenError, type UserRepository } from '../store/users';
import { clientText } from '../../platform/util/clientText';
import { messageOf } from '../../platform/util/errors';

/** What the service needs of each collaborator, and nothing more, so a test can stand in for it. */
export type AccountUsers = Pick<UserRepository, 'exists' | 'create' | 'findByUsername' | 'updatePasswordHash'>;
export type AccountLoginGuard = Pick<LoginGuard, 'admit' | 'refund' | 'recordSuccess'>;
export type AccountPasswords = Pick<PasswordHasher, 'hash' | 'verify' | 'verifyDecoy' | 'needsRehash'>;
export type AccountTokens = Pick<TokenService, 'issue' | 'ttlSeconds'>;

export interface AccountLog {
  info(message: string): void;
  warn(message: string): void;
}

/** The counters the account rules increment (made by createApiCounters, src/api/metrics/counters.ts). */
export interface AccountCounters {
  /** result: success, wrong_password, unknown_user, throttled. */
  readonly loginAttempts: Counter<'result'>;
  /** result: created, taken. */
  readonly registrations: Counter<'result'>;
  /** limiter: login, for a login refused by brute-force protection. */
  readonly rateLimitRejections: Counter<'limiter'>;
}

export interface AccountServiceDeps {
  readonly users: AccountUsers;
  readonly loginGuard: AccountLoginGuard;
  readonly passwords: AccountPasswords;
  readonly tokens: AccountTokens;
  readonly log: AccountLog;
  readonly counters: AccountCounters;
}

export interface RegistrationInput {
  readonly username: string;
  readonly password: string;
  readonly email?: string | null | undefined;
}

export interface LoginInput {
  readonly username: string;
  readonly password: string;
}

/** Who is asking: what the brute-force limits count by and the log lines name. */
export interface ClientContext {
  readonly ip: string;
}

export interface AccountSummary {
  readonly id: number;
  /** As registered (display form), whatever spelling was typed. */
  readonly username: string;
}

export type RegistrationOutcome =
  | { readonly kind: 'created'; readonly user: AccountSummary }
  /** The canonical name belongs to an account already (any letter case, any compatibility form). */
  | { readonly kind: 'taken' }
  /** The name breaks the registration rule; `problem` names the field and the rule, for the client. */
  | { readonly kind: 'invalid'; readonly field: 'username'; readonly problem: string };

export type LoginOutcome =
  | { readonly kind: 'success'; readonly token: string; readonly expiresIn: number; readonly user: AccountSummary }
  /**
   * Wrong password or unknown user: deliberately one outcome, so no caller can tell a client
   * whether the name exists (the log and the counters tell them apart).
   */
  | { readonly kind: 'invalid_credentials' }
  /** Refused before any password was checked; the caller sends Retry-After. */
  | { readonly kind: 'throttled'; readonly scope: LoginBlock['scope']; readonly retryAfterSeconds: number };

/** Bound on client-chosen names in log lines (a login name may be up to 64 characters). */
const LOGGED_NAME_CHARS = 64;
const logged = (username: string): string => clientText(username, LOGGED_NAME_CHARS);

export class AccountService {
  constructor(private readonly deps: AccountServiceDeps) {}

  async register(input: RegistrationInput): Promise<RegistrationOutcome> {
    const { users, passwords, log, counters } = this.deps;
    // The same rule as the routes' validation: a caller that skipped it cannot store a name the
    // policy forbids.
    if (!isRegistrableUsername(displayUsername(input.username))) {
      return { kind: 'invalid', field: 'username', problem: `username ${USERNAME_RULE}` };
    }
    log.info(`Registration attempt for user: ${logged(input.username)}`);
    // A cheap check first spares a password hash for a name that is taken; the unique key
    // still decides when two registrations race.
    if (await users.exists(input.username)) return this.taken(input.username);
    const passwordHash = await passwords.hash(input.password);
    let user;
    try {
      user = await users.create({ username: input.username, email: input.email ?? null, passwordHash });
    } catch (error) {
      if (error instanceof UsernameTakenError) return this.taken(input.username);
      throw error;
    }
    log.info(`User registered: ${user.username} (id ${user.id})`);
    counters.registrations.inc({ result: 'created' });
    return { kind: 'created', user: { id: user.id, username: user.username } };
  }

  async login(input: LoginInput, client: ClientContext): Promise<LoginOutcome> {
    const { users, passwords, tokens, log, loginGuard, counters } = this.deps;
    const { ip } = client;
    log.info(`Login attempt for user: ${logged(input.username)}`);
    // Counted per pair and per IP before the password is checked (a wrong password stays counted),
    // so no number of parallel attempts gets past either limit.
    const block = await loginGuard.admit(input.username, ip);
    if (block) {
      log.warn(
        `Login blocked for user: ${logged(input.username)} from ${ip} (too many failed attempts ` +
          `${block.scope === 'account' ? 'for this user from this address' : 'from this address today'}); ` +
          `retry after ${block.retryAfterSeconds} s`,
      );
      counters.loginAttempts.inc({ result: 'throttled' });
      counters.rateLimitRejections.inc({ limiter: 'login' });
      return { kind: 'throttled', scope: block.scope, retryAfterSeconds: block.retryAfterSeconds };
    }
    let user;
    let valid;
    try {
      user = await users.findByUsername(input.username);
      // An unknown user costs one verification too, so response time does not tell whether a name exists.
      valid = user ? await passwords.verify(input.password, user.passwordHash) : await passwords.verifyDecoy(input.password);
    } catch (error) {
      // No password was judged (the database or the hash queue failed): the attempt must not
      // count against the user or the IP.
      await loginGuard.refund(input.username, ip);
      throw error;
    }
    if (!user || !valid) {
      log.warn(`Login failed for user: ${logged(input.username)} (${user ? 'wrong password' : 'unknown user'})`);
      counters.loginAttempts.inc({ result: user ? 'wrong_password' : 'unknown_user' });
      return { kind: 'invalid_credentials' };
    }
    await loginGuard.recordSuccess(input.username, ip);
    if (passwords.needsRehash(user.passwordHash)) await this.upgradeStoredHash(user, input.password);
    const token = await tokens.issue({ userId: user.id, username: user.username });
    log.info(`Login successful for user: ${user.username}`);
    counters.loginAttempts.inc({ result: 'success' });
    return { kind: 'success', token, expiresIn: tokens.ttlSeconds, user: { id: user.id, username: user.username } };
  }

  /**
   * Replaces a hash made with an older scheme or a lower cost (scrypt, weaker argon2id) by one with
   * the current cost: only a login knows the password to do it. Best effort: the user is logged in
   * whatever happens, and the next login tries again.
   */
  private async upgradeStoredHash(
    user: { readonly id: number; readonly username: string; readonly passwordHash: string },
    password: string,
  ): Promise<void> {
    const { users, passwords, log } = this.deps;
    try {
      const upgraded = await passwords.hash(password);
      if (await users.updatePasswordHash(user.id, upgraded, user.passwordHash)) {
        log.info(`Password hash of user ${user.username} (id ${user.id}) upgraded to the current parameters`);
      }
    } catch (error) {
      log.warn(`Could not upgrade the password hash of user ${user.username} (id ${user.id}): ${messageOf(error)}`);
    }
  }

  private taken(username: string): RegistrationOutcome {
    this.deps.log.warn(`Registration refused for user: ${logged(username)} (name taken)`);
    this.deps.counters.registrations.inc({ result: 'taken' });
    return { kind: 'taken' };
  }
}
