// Register, log in, ask who I am: the accounts API end to end, against a real database.
import test from 'ava';
import { SignJWT } from 'jose';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService, type Service } from './helpers/service';
import { sleep } from './helpers/wait';

let db: TestDatabase;
let service: Service;
const JWT_SECRET = 'accounts-test-secret-that-is-long-enough-0123456789';

test.before(async () => {
  db = await createTestDatabase('ra_accounts');
  service = await startService({ env: { ...db.env, JWT_SECRET } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

const register = (body: unknown) => service.request('/api/register', { body });
const login = (body: unknown) => service.request('/api/login', { body });

test.serial('register, login and /api/me round trip', async (t) => {
  const created = await register({ username: 'alice', password: 'correct horse', email: 'alice@example.com' });
  t.is(created.status, 201);
  t.deepEqual(Object.keys(created.body).sort(), ['id', 'username']);
  t.is(created.body.username, 'alice');
  t.true(Number.isInteger(created.body.id));

  const rows = await db.query<Array<{ username: string; email: string; password_hash: string }>>(
    'SELECT username, email, password_hash FROM users WHERE id = ?',
    [created.body.id],
  );
  t.is(rows.length, 1);
  t.is(rows[0]?.email, 'alice@example.com');
  t.regex(rows[0]?.password_hash ?? '', /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/, 'the password is stored hashed');
  t.false((rows[0]?.password_hash ?? '').includes('correct horse'));

  const session = await login({ username: 'alice', password: 'correct horse' });
  t.is(session.status, 200);
  t.is(typeof session.body.token, 'string');
  // JWT_TTL_SECONDS defaults to an hour: the answer and the token's own claims say so.
  t.is(session.body.expiresIn, 3600);
  const claims = JSON.parse(Buffer.from(String(session.body.token).split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
  t.is(Number(claims['exp']) - Number(claims['iat']), 3600);
  t.is(claims['iss'], 'resilient-api');
  t.is(claims['sub'], String(created.body.id));
  t.deepEqual(session.body.user, { id: created.body.id, username: 'alice' });

  const me = await service.request('/api/me', { headers: { authorization: `Bearer ${session.body.token}` } });
  t.is(me.status, 200);
  t.is(me.body.id, created.body.id);
  t.is(me.body.username, 'alice');
  t.is(me.body.email, 'alice@example.com');
  t.is(me.body.password_hash, undefined);
  t.is(me.body.passwordHash, undefined);
});

test.serial('a username is unique whatever its letter case', async (t) => {
  t.is((await register({ username: 'Bob.Smith', password: 'password-1' })).status, 201);
  for (const variant of ['Bob.Smith', 'bob.smith', 'BOB.SMITH']) {
    const duplicate = await register({ username: variant, password: 'password-2' });
    t.is(duplicate.status, 409, variant);
    t.is(duplicate.body.code, 'Conflict');
  }
  const rows = await db.query<unknown[]>('SELECT id FROM users WHERE username_key = ?', ['bob.smith']);
  t.is(rows.length, 1);
  // Login is case-insensitive too, and answers with the name as registered.
  const session = await login({ username: 'BOB.smith', password: 'password-1' });
  t.is(session.status, 200);
  t.is(session.body.user.username, 'Bob.Smith');
});

test.serial('concurrent registrations of one name create exactly one user', async (t) => {
  const replies = await Promise.all(
    Array.from({ length: 8 }, (_, i) => register({ username: i % 2 ? 'racer' : 'RACER', password: 'password-x' })),
  );
  t.deepEqual(replies.map((r) => r.status).sort(), [201, 409, 409, 409, 409, 409, 409, 409]);
  const rows = await db.query<unknown[]>('SELECT id FROM users WHERE username_key = ?', ['racer']);
  t.is(rows.length, 1);
});

test.serial('wrong password and unknown user get the same 401', async (t) => {
  await register({ username: 'carol', password: 'carol-password' });
  const wrong = await login({ username: 'carol', password: 'not-her-password' });
  const unknown = await login({ username: 'nobody-here', password: 'whatever-123' });
  for (const reply of [wrong, unknown]) {
    t.is(reply.status, 401);
    t.is(reply.body.code, 'InvalidCredentials');
    t.is(reply.body.message, 'Invalid username or password');
    t.is(reply.body.token, undefined);
  }
});

test.serial('invalid registrations are refused with 400 and change nothing', async (t) => {
  const before = await db.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM users');
  const cases: Array<[unknown, RegExp]> = [
    [{ password: 'password-1' }, /username is required/],
    [{ username: 'dave' }, /password is required/],
    [{ username: 'ab', password: 'password-1' }, /username must be 3 to 32/],
    [{ username: 'x'.repeat(33), password: 'password-1' }, /username must be 3 to 32/],
    [{ username: 'bad name', password: 'password-1' }, /username/],
    [{ username: "robert'); DROP TABLE users;--", password: 'password-1' }, /username/],
    [{ username: 'dave', password: 'short' }, /password must be at least 8/],
    [{ username: 'dave', password: 'p'.repeat(129) }, /password must be at most 128/],
    [{ username: 'dave', password: 'password-1', email: 'not-an-email' }, /email/],
    [{ username: 42, password: 'password-1' }, /username must be a string/],
    [{ username: 'dave', password: 'password-1', admin: true }, /unknown field\(s\): admin/],
    [['dave', 'password-1'], /JSON object/],
  ];
  for (const [body, message] of cases) {
    const reply = await register(body);
    t.is(reply.status, 400, JSON.stringify(body));
    t.is(reply.body.code, 'BadRequest');
    t.regex(reply.body.message, message, JSON.stringify(body));
  }
  const after = await db.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM users');
  t.deepEqual(after, before);
});

test.serial('/api/me refuses missing, malformed, tampered, foreign, expired and alg:none tokens', async (t) => {
  const created = await register({ username: 'erin', password: 'erin-password' });
  const session = await login({ username: 'erin', password: 'erin-password' });
  const good: string = session.body.token;
  const [header, payload, signature] = good.split('.');
  const forged = Buffer.from(
    JSON.stringify({ ...JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), sub: '1' }),
  ).toString('base64url');
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
  const foreign = await new SignJWT({ name: 'erin' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(created.body.id))
    .setIssuer('resilient-api')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode('some-other-secret-that-is-long-enough-0123'));
  const expired = await new SignJWT({ name: 'erin' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(created.body.id))
    .setIssuer('resilient-api')
    .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
    .sign(new TextEncoder().encode(JWT_SECRET));

  const attempts: Record<string, Record<string, string>> = {
    missing: {},
    'not bearer': { authorization: `Basic ${Buffer.from('erin:erin-password').toString('base64')}` },
    garbage: { authorization: 'Bearer not-a-token' },
    tampered: { authorization: `Bearer ${header}.${forged}.${signature}` },
    'alg none': { authorization: `Bearer ${none}` },
    'other key': { authorization: `Bearer ${foreign}` },
    expired: { authorization: `Bearer ${expired}` },
  };
  for (const [name, headers] of Object.entries(attempts)) {
    const reply = await service.request('/api/me', { headers });
    t.is(reply.status, 401, name);
    t.is(reply.body.code, 'Unauthorized', name);
    t.regex(String(reply.headers['www-authenticate']), /^Bearer/, name);
  }
  t.is((await service.request('/api/me', { headers: { authorization: `Bearer ${good}` } })).status, 200);
});

test.serial('/api/me refuses tokens with a foreign issuer, no expiry, another algorithm or a bad subject', async (t) => {
  const created = await register({ username: 'erin2', password: 'erin-password' });
  const key = new TextEncoder().encode(JWT_SECRET);
  const base = (alg = 'HS256') =>
    new SignJWT({ name: 'erin2' }).setProtectedHeader({ alg, typ: 'JWT' }).setSubject(String(created.body.id)).setIssuedAt();
  const tokens: Record<string, string> = {
    'foreign issuer': await base().setIssuer('someone-else').setExpirationTime('1h').sign(key),
    'no issuer': await base().setExpirationTime('1h').sign(key),
    'no expiry': await base().setIssuer('resilient-api').sign(key),
    // The right key, but an algorithm the service does not accept: verification is pinned to HS256.
    HS512: await base('HS512').setIssuer('resilient-api').setExpirationTime('1h').sign(key),
    'subject not a user id': await new SignJWT({ name: 'erin2' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('../admin')
      .setIssuer('resilient-api')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key),
  };
  for (const [name, token] of Object.entries(tokens)) {
    const reply = await service.request('/api/me', { headers: { authorization: `Bearer ${token}` } });
    t.is(reply.status, 401, name);
    t.is(reply.body.code, 'Unauthorized', name);
  }
});

test.serial('the token of a deleted user is refused', async (t) => {
  const created = await register({ username: 'frank', password: 'frank-password' });
  const session = await login({ username: 'frank', password: 'frank-password' });
  await db.query('DELETE FROM users WHERE id = ?', [created.body.id]);
  const reply = await service.request('/api/me', { headers: { authorization: `Bearer ${session.body.token}` } });
  t.is(reply.status, 401);
});

test.serial('total_users in /api/status follows registrations and deletions', async (t) => {
  const [{ n } = { n: 0 }] = await db.query<Array<{ n: number }>>('SELECT COUNT(*) AS n FROM users');
  const status = await service.request('/api/status');
  t.is(status.status, 200);
  // The figure is cached for at most a second.
  t.true(Math.abs(status.body.stats.total_users - n) <= 1);
  await register({ username: 'gina', password: 'gina-password' });
  await sleep(1100);
  t.is((await service.request('/api/status')).body.stats.total_users, Number(n) + 1);
});
