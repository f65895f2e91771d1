// Strict tokens and one generic 401: every spelling of a token but the exact one this service
// issues, and every claim it would not issue, is refused with the same answer
// (`Authentication required`, a WWW-Authenticate challenge, the error envelope), while the
// reason goes only to the auth log and to resilient_api_auth_failures_total{reason}.
import test from 'ava';
import { SignJWT, type JWTPayload } from 'jose';
import { CLOCK_SKEW_SECONDS, TokenService, claimsOf, compactJwsProblem, userIdOf, type TokenRefusal } from '../src/api/auth/tokens';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import type { Reply } from './helpers/http';
import { changes, sample, scrapeMetrics } from './helpers/metrics';
import { startService, type Service } from './helpers/service';
import { waitFor } from './helpers/wait';

const JWT_SECRET = 'tokens-test-secret-that-is-long-enough-0123456789';
const TTL_SECONDS = 3600;
const ISSUER = 'resilient-api';
const KEY = new TextEncoder().encode(JWT_SECRET);
const OTHER_KEY = new TextEncoder().encode('another-secret-that-is-long-enough-0123456789');
const REASONS = ['missing', 'malformed', 'algorithm', 'signature', 'claims', 'expired', 'not_yet_valid', 'lifetime', 'subject', 'unknown_user'];
const BEARER_CHALLENGE = 'Bearer realm="resilient-api"';
const INVALID_TOKEN_CHALLENGE = 'Bearer realm="resilient-api", error="invalid_token"';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_tokens');
  service = await startService({ env: { ...db.env, JWT_SECRET, JWT_TTL_SECONDS: String(TTL_SECONDS) } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A user and the token its login returned. */
async function session(username: string): Promise<{ id: number; token: string }> {
  const created = await service.request('/api/register', { body: { username, password: `${username}-password` } });
  if (created.status !== 201) throw new Error(`register: ${created.status} ${created.text}`);
  const login = await service.request('/api/login', { body: { username, password: `${username}-password` } });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${login.text}`);
  return { id: created.body.id as number, token: login.body.token as string };
}

interface Forged {
  readonly claims?: JWTPayload;
  /** Claims of a normal token to leave out. */
  readonly without?: ReadonlyArray<'sub' | 'iat' | 'exp' | 'iss' | 'name'>;
  readonly alg?: string;
  readonly key?: Uint8Array;
}

/** A token signed as the service signs (with its secret), with the claims changed as asked. */
function forge(userId: number, { claims = {}, without = [], alg = 'HS256', key = KEY }: Forged = {}): Promise<string> {
  const iat = nowSeconds();
  const payload: JWTPayload = { name: 'forged', sub: String(userId), iss: ISSUER, iat, exp: iat + 600, ...claims };
  for (const claim of without) delete payload[claim];
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

const segment = (json: object): string => Buffer.from(JSON.stringify(json)).toString('base64url');

/** The same bytes, with unused low bits of the last character set: what a lenient decoder takes. */
function nonCanonical(base64url: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(base64url.at(-1) ?? 'A');
  return base64url.slice(0, -1) + alphabet[last ^ 1];
}

function assertGenericRefusal(t: import('ava').ExecutionContext, reply: Reply, challenge: string, name: string): void {
  t.is(reply.status, 401, `${name}: ${reply.text}`);
  t.regex(String(reply.headers['content-type']), /^application\/json/, name);
  t.deepEqual(reply.body, { code: 'Unauthorized', message: 'Authentication required', requestId: reply.headers['x-request-id'] }, name);
  t.truthy(reply.headers['x-request-id'], name);
  t.is(reply.headers['www-authenticate'], challenge, name);
}

const authLines = (log: string): string[] => log.split('\n').filter((line) => / - auth - (INFO|WARN) - Authentication refused \(/.test(line));

test.serial('every lenient spelling and every claim this service would not issue gets the same 401, its reason only in the log and the metric', async (t) => {
  const alice = await session('alice');
  const [header = '', payload = '', signature = ''] = alice.token.split('.');
  const id = alice.id;
  const now = nowSeconds();
  const altered = segment({ sub: '1', name: 'x', iss: ISSUER, iat: now, exp: now + 60 });
  const bearer = async (options: Forged): Promise<string> => `Bearer ${await forge(id, options)}`;
  const gone = await session('gone-user');
  await db.query('DELETE FROM users WHERE id = ?', [gone.id]);

  const refused: Array<{ name: string; authorization?: string; reason: string }> = [
    { name: 'no Authorization header', reason: 'missing' },
    { name: 'Basic credentials', authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}`, reason: 'missing' },
    { name: 'a bare secret, no scheme', authorization: 'raw-api-key-0123456789abcdef', reason: 'missing' },
    { name: 'Bearer and nothing', authorization: 'Bearer', reason: 'malformed' },
    { name: 'two spaces after Bearer', authorization: `Bearer  ${alice.token}`, reason: 'malformed' },
    { name: 'a trailing "="', authorization: `Bearer ${alice.token}=`, reason: 'malformed' },
    { name: 'a trailing "=="', authorization: `Bearer ${alice.token}==`, reason: 'malformed' },
    { name: 'non-canonical last character of the signature', authorization: `Bearer ${header}.${payload}.${nonCanonical(signature)}`, reason: 'malformed' },
    { name: 'a tab inside the signature', authorization: `Bearer ${header}.${payload}.${signature.slice(0, 10)}\t${signature.slice(10)}`, reason: 'malformed' },
    { name: 'a fourth segment', authorization: `Bearer ${alice.token}.${signature}`, reason: 'malformed' },
    { name: 'a trailing dot', authorization: `Bearer ${alice.token}.`, reason: 'malformed' },
    { name: 'alg none, no signature', authorization: `Bearer ${segment({ alg: 'none', typ: 'JWT' })}.${payload}.`, reason: 'malformed' },
    { name: 'alg none with a signature', authorization: `Bearer ${segment({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`, reason: 'algorithm' },
    { name: 'HS512 with the right key', authorization: await bearer({ alg: 'HS512' }), reason: 'algorithm' },
    { name: 'another key', authorization: await bearer({ key: OTHER_KEY }), reason: 'signature' },
    { name: 'a payload changed after signing', authorization: `Bearer ${header}.${altered}.${signature}`, reason: 'signature' },
    { name: 'sub "0x" + hex', authorization: await bearer({ claims: { sub: `0x${id.toString(16)}` } }), reason: 'subject' },
    { name: 'sub "<id>.0"', authorization: await bearer({ claims: { sub: `${id}.0` } }), reason: 'subject' },
    { name: 'sub " <id>"', authorization: await bearer({ claims: { sub: ` ${id}` } }), reason: 'subject' },
    { name: 'sub "<id>e0"', authorization: await bearer({ claims: { sub: `${id}e0` } }), reason: 'subject' },
    { name: 'sub "0<id>"', authorization: await bearer({ claims: { sub: `0${id}` } }), reason: 'subject' },
    { name: 'sub "+<id>"', authorization: await bearer({ claims: { sub: `+${id}` } }), reason: 'subject' },
    { name: 'sub "0"', authorization: await bearer({ claims: { sub: '0' } }), reason: 'subject' },
    { name: 'sub beyond the safe integers', authorization: await bearer({ claims: { sub: '9007199254740993' } }), reason: 'subject' },
    { name: 'sub a number, not a string', authorization: await bearer({ claims: { sub: id as unknown as string } }), reason: 'subject' },
    { name: 'no sub', authorization: await bearer({ without: ['sub'] }), reason: 'subject' },
    { name: 'an expiry 10 years away', authorization: await bearer({ claims: { exp: now + 10 * 365 * 24 * 3600 } }), reason: 'lifetime' },
    { name: 'a lifetime one second too long', authorization: await bearer({ claims: { iat: now - 10, exp: now - 10 + TTL_SECONDS + 1 } }), reason: 'lifetime' },
    { name: 'issued an hour from now', authorization: await bearer({ claims: { iat: now + 3600, exp: now + 3600 + 600 } }), reason: 'not_yet_valid' },
    { name: 'issued beyond the clock skew', authorization: await bearer({ claims: { iat: now + CLOCK_SKEW_SECONDS + 60, exp: now + 600 } }), reason: 'not_yet_valid' },
    { name: 'nbf in the future', authorization: await bearer({ claims: { nbf: now + 3600 } }), reason: 'not_yet_valid' },
    { name: 'no iat', authorization: await bearer({ without: ['iat'] }), reason: 'claims' },
    { name: 'no exp', authorization: await bearer({ without: ['exp'] }), reason: 'claims' },
    { name: 'iat not whole seconds', authorization: await bearer({ claims: { iat: now - 0.5 } }), reason: 'claims' },
    { name: 'another issuer', authorization: await bearer({ claims: { iss: 'someone-else' } }), reason: 'claims' },
    { name: 'no name', authorization: await bearer({ without: ['name'] }), reason: 'claims' },
    { name: 'expired', authorization: await bearer({ claims: { iat: now - 7200, exp: now - 3600 } }), reason: 'expired' },
    { name: 'a deleted user', authorization: `Bearer ${gone.token}`, reason: 'unknown_user' },
  ];


  const logBefore = service.log().length;
  const before = await scrapeMetrics(service);
  for (const reason of REASONS) t.not(sample(before, `resilient_api_auth_failures_total{reason="${reason}"}`), undefined, `${reason} starts at 0`);

  for (const { name, authorization, reason } of refused) {
    const reply = await service.request('/api/me', authorization === undefined ? {} : { headers: { authorization } });
    assertGenericRefusal(t, reply, reason === 'missing' ? BEARER_CHALLENGE : INVALID_TOKEN_CHALLENGE, name);
  }

  // The reasons, counted.
  const delta = changes(before, await scrapeMetrics(service));
  const expected = new Map<string, number>(REASONS.map((reason) => [reason, 0]));
  for (const { reason } of refused) expected.set(reason, (expected.get(reason) ?? 0) + 1);
  for (const [reason, count] of expected) t.is(delta(`resilient_api_auth_failures_total{reason="${reason}"}`), count, reason);

  // The reasons, logged one line each (missing at INFO, a refused token at WARN), with no token.
  const lines = await waitFor('an auth line for every refusal', () => {
    const found = authLines(service.log().slice(logBefore));
    return found.length >= refused.length ? found : undefined;
  });
  t.is(lines.length, refused.length);
  for (const [index, { name, reason }] of refused.entries()) {
    const level = reason === 'missing' ? 'INFO' : 'WARN';
    t.regex(lines[index] ?? '', new RegExp(` - auth - ${level} - Authentication refused \\(${reason}: [^)]*\\) for GET /api/me from 127\\.0\\.0\\.1$`), name);
  }
  const log = service.log();
  for (const { authorization } of refused) {
    const token = authorization?.replace(/^\S+\s*/, '') ?? '';
    for (const piece of token.split(/[.\s]/).filter((part) => part.length >= 20)) t.false(log.includes(piece), `the log holds ${piece.slice(0, 12)}…`);
  }
  t.false(log.includes(signature), 'the log holds no signature');
  t.false(log.includes('raw-api-key'), 'nor a credential sent without a scheme');
  t.regex(log, /Authentication refused \(missing: Basic credentials, not Bearer\)/);
  // The error line of each answer (category http) says what the client was told, and no more.
  // Written after the auth line of the same request: waited for, not read at once.
  const answeredLines = (): string[] =>
    service.log().slice(logBefore).split('\n').filter((line) => / - http - WARN - Request \S+ GET \/api\/me answered 401 /.test(line));
  const answered = await waitFor('the http line of every refusal', () => {
    const found = answeredLines();
    return found.length >= refused.length ? found : undefined;
  });
  t.is(answered.length, refused.length);
  for (const line of answered) t.regex(line, /answered 401 Unauthorized: Authentication required$/);

  // The token the service issued, as it issued it, still opens the account; so does one issued a little ahead.
  const me = await service.request('/api/me', { headers: { authorization: `Bearer ${alice.token}` } });
  t.is(me.status, 200, me.text);
  t.is(me.body.username, 'alice');
  const lowercase = await service.request('/api/me', { headers: { authorization: `bearer ${alice.token}` } });
  t.is(lowercase.status, 200, 'the scheme is case-insensitive (RFC 9110)');
  const ahead = await forge(id, { claims: { iat: now + 10, exp: now + 10 + TTL_SECONDS } });
  t.is((await service.request('/api/me', { headers: { authorization: `Bearer ${ahead}` } })).status, 200, 'an iat within the clock skew');
});

test.serial('a deleted user\'s token gets the very answer a forged one gets', async (t) => {
  const bob = await session('bob');
  const forged = await forge(bob.id, { key: OTHER_KEY });
  await db.query('DELETE FROM users WHERE id = ?', [bob.id]);
  const deleted = await service.request('/api/me', { headers: { authorization: `Bearer ${bob.token}` } });
  const wrongKey = await service.request('/api/me', { headers: { authorization: `Bearer ${forged}` } });
  for (const reply of [deleted, wrongKey]) assertGenericRefusal(t, reply, INVALID_TOKEN_CHALLENGE, 'refused');
  const strip = (reply: Reply) => ({ status: reply.status, challenge: reply.headers['www-authenticate'], code: reply.body.code, message: reply.body.message });
  t.deepEqual(strip(deleted), strip(wrongKey));
});

test('the login\'s 401 stays as it was: generic, and with no bearer challenge', async (t) => {
  const reply = await service.request('/api/login', { body: { username: 'nobody-here', password: 'wrong-password' } });
  t.is(reply.status, 401);
  t.deepEqual(reply.body, { code: 'InvalidCredentials', message: 'Invalid username or password', requestId: reply.headers['x-request-id'] });
  t.is(reply.headers['www-authenticate'], undefined);
});

// The strict parser, in-process.

test('compactJwsProblem accepts only three canonical unpadded base64url segments', async (t) => {
  const token = await new TokenService({ secret: JWT_SECRET, ttlSeconds: TTL_SECONDS, issuer: ISSUER }).issue({ userId: 7, username: 'seven' });
  const [h = '', p = '', s = ''] = token.split('.');
  t.is(compactJwsProblem(token), undefined);
  for (const bad of [
    `${token}=`,
    `${h}.${p}.${s}==`,
    `${h}=.${p}.${s}`,
    `${h}.${p}.${nonCanonical(s)}`,
    `${h}.${p}.${s}AA`,
    ` ${token}`,
    `${token} `,
    `${token}\n`,
    `${h}.${p}.${s.slice(0, 5)} ${s.slice(5)}`,
    `${h}.${p}.`,
    `${h}.${p}`,
    `${token}.`,
    `${h}.${p}.${s.replace(/./, '+')}`,
    `${h}.${p}.${s.replace(/./, '/')}`,
    `${h}.${p}.${'A'.repeat(3000)}`,
    '',
  ]) {
    t.not(compactJwsProblem(bad), undefined, JSON.stringify(bad.slice(-12)));
  }
});

test('userIdOf takes only canonical positive safe integers', (t) => {
  t.is(userIdOf('1'), 1);
  t.is(userIdOf('42'), 42);
  t.is(userIdOf(String(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  for (const bad of ['0', '01', '-1', '+1', ' 3', '3 ', '0x2', '1.0', '3e0', '1_000', '١', '', '9007199254740992', '12345678901234567', 3, null, undefined]) {
    t.is(userIdOf(bad), undefined, JSON.stringify(bad));
  }
});

test('claimsOf: iat at most the clock skew ahead, exp - iat within the lifetime', (t) => {
  const now = 1_800_000_000;
  const claims = (iat: number, exp: number): JWTPayload => ({ sub: '5', name: 'five', iss: ISSUER, iat, exp });
  const refusal = (payload: JWTPayload): TokenRefusal | undefined => {
    try {
      claimsOf(payload, now, TTL_SECONDS);
      return undefined;
    } catch (error) {
      return (error as { reason: TokenRefusal }).reason;
    }
  };
  t.deepEqual(claimsOf(claims(now, now + TTL_SECONDS), now, TTL_SECONDS), { userId: 5, username: 'five' });
  t.is(refusal(claims(now + CLOCK_SKEW_SECONDS, now + CLOCK_SKEW_SECONDS + 60)), undefined);
  t.is(refusal(claims(now + CLOCK_SKEW_SECONDS + 1, now + CLOCK_SKEW_SECONDS + 60)), 'not_yet_valid');
  t.is(refusal(claims(now, now + TTL_SECONDS + 1)), 'lifetime');
  t.is(refusal(claims(now, now)), 'lifetime');
  t.is(refusal(claims(now + 0.5, now + 60)), 'claims');
  t.is(refusal({ ...claims(now, now + 60), sub: '05' }), 'subject');
  t.is(refusal({ ...claims(now, now + 60), name: 5 }), 'claims');
});

test('issue() gives exp - iat = the lifetime exactly, even at the end of a second, and verify() takes what issue() gives', async (t) => {
  const tokens = new TokenService({ secret: JWT_SECRET, ttlSeconds: TTL_SECONDS, issuer: ISSUER });
  const endOfSecond = new Date(Math.floor(Date.now() / 1000) * 1000 + 999);
  const token = await tokens.issue({ userId: 9, username: 'nine' }, endOfSecond);
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as JWTPayload;
  t.is((payload.exp ?? 0) - (payload.iat ?? 0), TTL_SECONDS);
  t.deepEqual(await tokens.verify(token, endOfSecond), { userId: 9, username: 'nine' });
  await t.throwsAsync(tokens.verify(token, new Date(endOfSecond.getTime() + TTL_SECONDS * 1000)), { message: /expired/ });
});

test('compactJwsProblem judges canonical base64url exactly as decoding and encoding again would', (t) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const roundTrips = (segment: string): boolean => Buffer.from(segment, 'base64url').toString('base64url') === segment;
  // Every last character at every length modulo 4, after a few random characters.
  for (let length = 1; length <= 8; length++) {
    for (const last of alphabet) {
      const segment = 'eyJhbGciOi'.slice(0, length - 1) + last;
      const token = `${segment}.${segment}.${segment}`;
      t.is(compactJwsProblem(token) === undefined, roundTrips(segment), `${JSON.stringify(segment)}`);
    }
  }
});
