// The account rules in-process, with stand-ins for the users table, the brute-force guard, the
// password hasher and the token service: no database, no HTTP, no PM2. What the HTTP tests
// (accounts, protection, usernames, pm2-bruteforce) show end to end, this shows step by step:
// which collaborator is asked what, in which order, what is counted and what is logged.
import test from 'ava';
import { Counter } from 'prom-client';
import {
  AccountService,
  type AccountCounters,
  type AccountLoginGuard,
  type AccountPasswords,
  type AccountTokens,
  type AccountUsers,
} from '../src/api/accounts/service';
import type { LoginBlock } from '../src/api/auth/bruteForce';
import type { TokenClaims } from '../src/api/auth/tokens';
import { canonicalUsername, displayUsername } from '../src/api/auth/username';
import { UsernameTakenError, type User, type UserWithHash } from '../src/api/store/users';

const IP = '203.0.113.7';

/** What every stand-in was asked, in order, with the arguments that matter. */
type Journal = string[];

/** The users table in memory, keyed by canonical name as the real one is. */
class MemoryUsers implements AccountUsers {
  private readonly byKey = new Map<string, UserWithHash>();
  private nextId = 1;
  /** Simulates the race the unique key decides: exists() says free, create() finds it taken. */
  existsLies = false;
  failFind: Error | undefined;
  failUpdate: Error | undefined;

  constructor(private readonly journal: Journal) {}

  add(username: string, passwordHash: string): UserWithHash {
    const user = { id: this.nextId++, username: displayUsername(username), email: null, createdAt: new Date(), passwordHash };
    this.byKey.set(canonicalUsername(username), user);
    return user;
  }

  stored(username: string): UserWithHash | undefined {
    return this.byKey.get(canonicalUsername(username));
  }

  async exists(username: string): Promise<boolean> {
    this.journal.push(`users.exists ${username}`);
    return !this.existsLies && this.byKey.has(canonicalUsername(username));
  }

  async create(input: { username: string; email: string | null; passwordHash: string }): Promise<User> {
    this.journal.push(`users.create ${input.username}`);
    if (this.byKey.has(canonicalUsername(input.username))) throw new UsernameTakenError(displayUsername(input.username));
    const { passwordHash: _hidden, ...user } = this.add(input.username, input.passwordHash);
    return { ...user, email: input.email };
  }

  async findByUsername(username: string): Promise<UserWithHash | undefined> {
    this.journal.push(`users.findByUsername ${username}`);
    if (this.failFind) throw this.failFind;
    return this.byKey.get(canonicalUsername(username));
  }

  async updatePasswordHash(id: number, passwordHash: string, replacing: string): Promise<boolean> {
    this.journal.push(`users.updatePasswordHash ${id}`);
    if (this.failUpdate) throw this.failUpdate;
    for (const [key, user] of this.byKey) {
      if (user.id === id && user.passwordHash === replacing) {
        this.byKey.set(key, { ...user, passwordHash });
        return true;
      }
    }
    return false;
  }
}

class FakeGuard implements AccountLoginGuard {
  block: LoginBlock | undefined;

  constructor(private readonly journal: Journal) {}

  async admit(username: string, ip: string): Promise<LoginBlock | undefined> {
    this.journal.push(`guard.admit ${username} ${ip}`);
    return this.block;
  }

  async refund(username: string, ip: string): Promise<void> {
    this.journal.push(`guard.refund ${username} ${ip}`);
  }

  async recordSuccess(username: string, ip: string): Promise<void> {
    this.journal.push(`guard.recordSuccess ${username} ${ip}`);
  }
}

/**
 * "Hashes" that show their cost and password, so a test can see which hash is stored, and a
 * password that leaked into a log through a hash would be caught too.
 */
class FakePasswords implements AccountPasswords {
  failVerify: Error | undefined;

  constructor(private readonly journal: Journal) {}

  async hash(password: string): Promise<string> {
    this.journal.push('passwords.hash');
    return `current$${password}`;
  }

  async verify(password: string, stored: string): Promise<boolean> {
    this.journal.push('passwords.verify');
    if (this.failVerify) throw this.failVerify;
    return stored.slice(stored.indexOf('$') + 1) === password;
  }

  async verifyDecoy(_password: string): Promise<false> {
    this.journal.push('passwords.verifyDecoy');
    if (this.failVerify) throw this.failVerify;
    return false;
  }

  needsRehash(stored: string): boolean {
    return !stored.startsWith('current$');
  }
}

class FakeTokens implements AccountTokens {
  readonly ttlSeconds = 3600;
  readonly issued: string[] = [];

  constructor(private readonly journal: Journal) {}

  async issue(claims: TokenClaims): Promise<string> {
    this.journal.push(`tokens.issue ${claims.userId} ${claims.username}`);
    const token = `tok-${claims.userId}-${this.issued.length}-secret`;
    this.issued.push(token);
    return token;
  }
}

function setup() {
  const journal: Journal = [];
  const lines: string[] = [];
  const counters: AccountCounters = {
    // Real prom-client counters in no registry, read back as /metrics would.
    loginAttempts: new Counter({ name: 'login_attempts', help: 'h', labelNames: ['result'], registers: [] }),
    registrations: new Counter({ name: 'registrations', help: 'h', labelNames: ['result'], registers: [] }),
    rateLimitRejections: new Counter({ name: 'rate_limit_rejections', help: 'h', labelNames: ['limiter'], registers: [] }),
  };
  const users = new MemoryUsers(journal);
  const guard = new FakeGuard(journal);
  const passwords = new FakePasswords(journal);
  const tokens = new FakeTokens(journal);
  const service = new AccountService({
    users,
    loginGuard: guard,
    passwords,
    tokens,
    counters,
    log: { info: (message) => lines.push(`INFO ${message}`), warn: (message) => lines.push(`WARN ${message}`) },
  });
  /** Every non-zero series of the three counters, as `name{label}` → value. */
  const counted = async (): Promise<Record<string, number>> => {
    const all: Record<string, number> = {};
    for (const counter of Object.values(counters) as Array<Counter<string>>) {
      const { name, values } = await counter.get();
      for (const { labels, value } of values) {
        if (value !== 0) all[`${name}{${Object.values(labels).join(',')}}`] = value;
      }
    }
    return all;
  };
  return { service, users, guard, passwords, tokens, journal, lines, counted };
}

test('register: a free name is created with the hash of its password, counted and logged', async (t) => {
  const { service, users, journal, lines, counted } = setup();
  const outcome = await service.register({ username: 'alice', password: 'correct horse', email: 'alice@example.com' });
  t.deepEqual(outcome, { kind: 'created', user: { id: 1, username: 'alice' } });
  t.is(users.stored('alice')?.passwordHash, 'current$correct horse');
  t.deepEqual(journal, ['users.exists alice', 'passwords.hash', 'users.create alice']);
  t.deepEqual(lines, ['INFO Registration attempt for user: alice', 'INFO User registered: alice (id 1)']);
  t.deepEqual(await counted(), { 'registrations{created}': 1 });
});

test('register: a name taken in any letter case is refused before any hash is made', async (t) => {
  const { service, users, journal, lines, counted } = setup();
  users.add('Bob.Smith', 'current$password-1');
  const outcome = await service.register({ username: 'BOB.SMITH', password: 'password-2' });
  t.deepEqual(outcome, { kind: 'taken' });
  t.deepEqual(journal, ['users.exists BOB.SMITH']);
  t.is(users.stored('bob.smith')?.passwordHash, 'current$password-1', 'the account is untouched');
  t.deepEqual(lines, ['INFO Registration attempt for user: BOB.SMITH', 'WARN Registration refused for user: BOB.SMITH (name taken)']);
  t.deepEqual(await counted(), { 'registrations{taken}': 1 });
});

test('register: a name taken between the check and the insert is refused the same way', async (t) => {
  const { service, users, journal, counted } = setup();
  users.add('racer', 'current$first');
  users.existsLies = true;
  t.deepEqual(await service.register({ username: 'RACER', password: 'password-x' }), { kind: 'taken' });
  t.deepEqual(journal, ['users.exists RACER', 'passwords.hash', 'users.create RACER']);
  t.is(users.stored('racer')?.passwordHash, 'current$first');
  t.deepEqual(await counted(), { 'registrations{taken}': 1 });
});

test('register: a name outside the rule is invalid, and nothing is hashed, stored, counted or logged', async (t) => {
  const { service, journal, lines, counted } = setup();
  // Too short, a space, mixed Latin and Cyrillic ("а" is Cyrillic), too long.
  for (const username of ['ab', 'bad name', '\u0430dmin', 'x'.repeat(33)]) {
    const outcome = await service.register({ username, password: 'password-1' });
    t.is(outcome.kind, 'invalid', username);
    if (outcome.kind === 'invalid') {
      t.is(outcome.field, 'username');
      t.regex(outcome.problem, /^username must be 3 to 32 characters/);
    }
  }
  t.deepEqual(journal, []);
  t.deepEqual(lines, []);
  t.deepEqual(await counted(), {});
});

test('register: a database failure is thrown, not answered as taken, and not counted', async (t) => {
  const { service, users, counted } = setup();
  users.create = async () => {
    throw new Error('connection lost');
  };
  await t.throwsAsync(service.register({ username: 'dora', password: 'password-1' }), { message: 'connection lost' });
  t.deepEqual(await counted(), {});
});

test('login: the right password, in any spelling of the name, is admitted, reset and answered with a token', async (t) => {
  const { service, users, tokens, journal, lines, counted } = setup();
  const bob = users.add('Bob.Smith', 'current$password-1');
  const outcome = await service.login({ username: 'BOB.smith', password: 'password-1' }, { ip: IP });
  t.deepEqual(outcome, { kind: 'success', token: tokens.issued[0] ?? '', expiresIn: 3600, user: { id: bob.id, username: 'Bob.Smith' } });
  // Admitted before the password is checked; the success is recorded before the token is made.
  t.deepEqual(journal, [
    `guard.admit BOB.smith ${IP}`,
    'users.findByUsername BOB.smith',
    'passwords.verify',
    `guard.recordSuccess BOB.smith ${IP}`,
    `tokens.issue ${bob.id} Bob.Smith`,
  ]);
  t.deepEqual(lines, ['INFO Login attempt for user: BOB.smith', 'INFO Login successful for user: Bob.Smith']);
  t.deepEqual(await counted(), { 'login_attempts{success}': 1 });
});

test('login: a wrong password stays counted by the guard (no refund, no reset) and gets no token', async (t) => {
  const { service, users, tokens, journal, lines, counted } = setup();
  users.add('carol', 'current$carol-password');
  const outcome = await service.login({ username: 'carol', password: 'not-her-password' }, { ip: IP });
  t.deepEqual(outcome, { kind: 'invalid_credentials' });
  t.deepEqual(journal, [`guard.admit carol ${IP}`, 'users.findByUsername carol', 'passwords.verify']);
  t.deepEqual(tokens.issued, []);
  t.deepEqual(lines, ['INFO Login attempt for user: carol', 'WARN Login failed for user: carol (wrong password)']);
  t.deepEqual(await counted(), { 'login_attempts{wrong_password}': 1 });
});

test('login: an unknown user gets the same outcome as a wrong password, after a decoy verification', async (t) => {
  const { service, journal, lines, counted } = setup();
  const outcome = await service.login({ username: 'nobody-here', password: 'whatever-123' }, { ip: IP });
  t.deepEqual(outcome, { kind: 'invalid_credentials' });
  // The decoy spends a verification's time, so timing does not tell that the name is unknown.
  t.deepEqual(journal, [`guard.admit nobody-here ${IP}`, 'users.findByUsername nobody-here', 'passwords.verifyDecoy']);
  t.deepEqual(lines, ['INFO Login attempt for user: nobody-here', 'WARN Login failed for user: nobody-here (unknown user)']);
  t.deepEqual(await counted(), { 'login_attempts{unknown_user}': 1 });
});

test('login: a throttled attempt checks no password, even the right one, and is counted as a rejection', async (t) => {
  const { service, users, guard, tokens, journal, lines, counted } = setup();
  users.add('victim', 'current$victim-password');
  guard.block = { scope: 'account', retryAfterSeconds: 42 };
  const outcome = await service.login({ username: 'VICTIM', password: 'victim-password' }, { ip: IP });
  t.deepEqual(outcome, { kind: 'throttled', scope: 'account', retryAfterSeconds: 42 });
  t.deepEqual(journal, [`guard.admit VICTIM ${IP}`], 'no lookup, no verification, no reset');
  t.deepEqual(tokens.issued, []);
  t.deepEqual(lines, [
    'INFO Login attempt for user: VICTIM',
    `WARN Login blocked for user: VICTIM from ${IP} (too many failed attempts for this user from this address); retry after 42 s`,
  ]);
  t.deepEqual(await counted(), { 'login_attempts{throttled}': 1, 'rate_limit_rejections{login}': 1 });
});

test('login: a block of the whole address says so in the log', async (t) => {
  const { service, guard, lines } = setup();
  guard.block = { scope: 'address', retryAfterSeconds: 86_000 };
  const outcome = await service.login({ username: 'walter', password: 'walter-password' }, { ip: IP });
  t.deepEqual(outcome, { kind: 'throttled', scope: 'address', retryAfterSeconds: 86_000 });
  t.is(lines[1], `WARN Login blocked for user: walter from ${IP} (too many failed attempts from this address today); retry after 86000 s`);
});

test('login: when no verdict is reached (lookup or verification fails) the attempt is refunded and the error thrown', async (t) => {
  for (const failing of ['lookup', 'verification'] as const) {
    const { service, users, passwords, journal, counted } = setup();
    users.add('dana', 'current$dana-password');
    const failure = new Error(`${failing} failed`);
    if (failing === 'lookup') users.failFind = failure;
    else passwords.failVerify = failure;
    const error = await t.throwsAsync(service.login({ username: 'dana', password: 'dana-password' }, { ip: IP }));
    t.is(error, failure, failing);
    t.deepEqual(
      journal,
      [`guard.admit dana ${IP}`, 'users.findByUsername dana', ...(failing === 'lookup' ? [] : ['passwords.verify']), `guard.refund dana ${IP}`],
      failing,
    );
    t.deepEqual(await counted(), {}, `${failing}: no verdict, nothing counted`);
  }
});

test('login: an outdated hash is replaced after the success is recorded; a failed upgrade still logs the user in', async (t) => {
  const { service, users, journal, lines } = setup();
  const legacy = users.add('legacy', 'scrypt$legacy-password');
  const first = await service.login({ username: 'legacy', password: 'legacy-password' }, { ip: IP });
  t.is(first.kind, 'success');
  t.is(users.stored('legacy')?.passwordHash, 'current$legacy-password');
  t.deepEqual(journal.slice(3), [
    `guard.recordSuccess legacy ${IP}`,
    'passwords.hash',
    `users.updatePasswordHash ${legacy.id}`,
    `tokens.issue ${legacy.id} legacy`,
  ]);
  t.true(lines.includes(`INFO Password hash of user legacy (id ${legacy.id}) upgraded to the current parameters`));

  const sticky = users.add('sticky', 'scrypt$sticky-password');
  users.failUpdate = new Error('read-only');
  const second = await service.login({ username: 'sticky', password: 'sticky-password' }, { ip: IP });
  t.is(second.kind, 'success');
  t.is(users.stored('sticky')?.passwordHash, 'scrypt$sticky-password');
  t.true(lines.includes(`WARN Could not upgrade the password hash of user sticky (id ${sticky.id}): read-only`));
});

test('log lines carry no password and no token, and client text cannot forge a line', async (t) => {
  const { service, users, tokens, lines } = setup();
  users.add('eve', 'current$eve-secret-password');
  await service.register({ username: 'frank', password: 'frank-secret-password' });
  await service.register({ username: 'eve', password: 'another-secret-password' });
  await service.login({ username: 'eve', password: 'eve-secret-password' }, { ip: IP });
  await service.login({ username: 'eve', password: 'wrong-secret-password' }, { ip: IP });
  // Within the 64 characters a logged name keeps, so the escapes are seen whole.
  const forged = 'x\n- auth - INFO - Login successful for user: admin\u202e';
  await service.login({ username: forged, password: 'forged-secret-password' }, { ip: IP });

  t.is(tokens.issued.length, 1);
  for (const line of lines) {
    t.notRegex(line, /secret-password/, line);
    for (const token of tokens.issued) t.false(line.includes(token), line);
    t.false(/[\n\r\u202e]/.test(line), `one printable line: ${JSON.stringify(line)}`);
  }
  t.true(lines.includes('INFO Login attempt for user: x\\n- auth - INFO - Login successful for user: admin\\u202e'));
});

test('log lines bound a long client-chosen name', async (t) => {
  const { service, lines } = setup();
  await service.login({ username: 'n'.repeat(500), password: 'password-1' }, { ip: IP });
  for (const line of lines) t.true(line.length < 200, line);
  t.regex(lines[0] ?? '', /^INFO Login attempt for user: n{64}…\(\+436 chars\)$/);
});
