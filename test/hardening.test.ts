// Hostile input and hostile clients: every bad request gets a 4xx JSON envelope, changes no row
// and leaves the process serving; every response carries the security headers; slow clients are
// cut off.
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { rawExchange, type Reply } from './helpers/http';
import { startService, type Service } from './helpers/service';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_hardening');
  service = await startService({
    env: {
      ...db.env,
      FAULT_INJECTION: '1',
      MAX_BODY_BYTES: '2048',
      HTTP_HEADERS_TIMEOUT_MS: '1500',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '1000',
      RATE_LIMIT_PER_MINUTE: '0',
    },
  });
  const created = await service.request('/api/register', { body: { username: 'victor', password: 'victor-password' } });
  if (created.status !== 201) throw new Error(created.text);
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

const json = { 'content-type': 'application/json' };
const nested = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** [what, path, raw body, headers] — each must be refused with a 4xx. */
const hostile: Array<[string, string, string | Buffer, Record<string, string>]> = [
  ['over-long username', '/api/register', JSON.stringify({ username: 'a'.repeat(33), password: 'password-1' }), json],
  ['over-long login username', '/api/login', JSON.stringify({ username: 'a'.repeat(65), password: 'password-1' }), json],
  ['over-long password', '/api/register', JSON.stringify({ username: 'longpass', password: 'p'.repeat(129) }), json],
  ['NUL in username', '/api/register', JSON.stringify({ username: 'ali\u0000ce', password: 'password-1' }), json],
  ['newline in login username', '/api/login', JSON.stringify({ username: 'victor\nadmin', password: 'password-1' }), json],
  ['escape sequence in username', '/api/register', JSON.stringify({ username: '\u001b[31mred', password: 'password-1' }), json],
  ['C1 control in login username', '/api/login', JSON.stringify({ username: 'vic\u0085tor', password: 'password-1' }), json],
  ['lone surrogate in login username', '/api/login', '{"username":"vic\\ud800tor","password":"password-1"}', json],
  ['look-alike letters in username', '/api/register', JSON.stringify({ username: '\u0430dmin', password: 'password-1' }), json],
  ['invalid UTF-8 byte', '/api/register', Buffer.concat([Buffer.from('{"username":"bad'), Buffer.from([0xff]), Buffer.from('","password":"password-1"}')]), json],
  ['overlong UTF-8 slash', '/api/login', Buffer.concat([Buffer.from('{"username":"a'), Buffer.from([0xc0, 0xaf]), Buffer.from('","password":"password-1"}')]), json],
  ['UTF-8 encoded surrogate', '/api/login', Buffer.concat([Buffer.from('{"username":"a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('","password":"password-1"}')]), json],
  ['SQL in username', '/api/register', JSON.stringify({ username: "x' OR '1'='1", password: 'password-1' }), json],
  ['SQL comment in username', '/api/register', JSON.stringify({ username: "victor'--", password: 'password-1' }), json],
  ['SQL in login', '/api/login', JSON.stringify({ username: "victor' OR 1=1 -- ", password: "' OR ''='" }), json],
  ['stacked query', '/api/register', JSON.stringify({ username: 'a; DROP TABLE users', password: 'password-1' }), json],
  ['nested JSON', '/api/register', nested(30), json],
  ['deeply nested arrays', '/api/login', '['.repeat(1000) + ']'.repeat(1000), json],
  ['number as username', '/api/register', JSON.stringify({ username: 12345, password: 'password-1' }), json],
  ['array as username', '/api/login', JSON.stringify({ username: ['victor'], password: 'victor-password' }), json],
  ['operator object as password', '/api/login', JSON.stringify({ username: 'victor', password: { $gt: '' } }), json],
  ['null fields', '/api/login', JSON.stringify({ username: null, password: null }), json],
  ['unknown field', '/api/register', JSON.stringify({ username: 'mallory', password: 'password-1', isAdmin: true }), json],
  ['__proto__ field', '/api/register', '{"username":"mallory","password":"password-1","__proto__":{"isAdmin":true}}', json],
  ['JSON that is not an object', '/api/login', '"victor"', json],
  ['empty body', '/api/register', '', json],
  ['truncated JSON', '/api/register', '{"username":"mallory",', json],
  ['missing content type', '/api/register', JSON.stringify({ username: 'mallory', password: 'password-1' }), {}],
  ['form content type', '/api/login', 'username=victor&password=victor-password', { 'content-type': 'application/x-www-form-urlencoded' }],
  ['text content type', '/api/register', JSON.stringify({ username: 'mallory', password: 'password-1' }), { 'content-type': 'text/plain' }],
  ['compressed body', '/api/register', Buffer.from([0x1f, 0x8b, 0x08, 0x00]), { ...json, 'content-encoding': 'gzip' }],
  ['huge body', '/api/register', JSON.stringify({ username: 'mallory', password: 'x'.repeat(100_000) }), json],
  ['huge body, chunked', '/api/login', JSON.stringify({ username: 'mallory', password: 'x'.repeat(100_000) }), { ...json, 'transfer-encoding': 'chunked', 'content-length': '' }],
];

/** What each hostile input must get: only the one well-formed login reaches a verdict (401). */
function expectedStatus(what: string): number {
  if (what === 'SQL in login') return 401;
  if (what.startsWith('huge body')) return 413;
  if (/content type|compressed/.test(what)) return 415;
  return 400;
}

const snapshot = () => db.query('SELECT id, username, email, password_hash, created_at FROM users ORDER BY id');

test.serial('hostile inputs get a 4xx JSON envelope, change no row, and the process keeps serving', async (t) => {
  const before = await snapshot();
  for (const [what, path, body, headers] of hostile) {
    const reply = await service.request(path, { body, headers });
    t.is(reply.status, expectedStatus(what), `${what}: ${reply.text.slice(0, 200)}`);
    t.regex(String(reply.headers['content-type']), /^application\/json/, what);
    t.deepEqual(Object.keys(reply.body ?? {}).sort(), ['code', 'message', 'requestId'], what);
  }
  t.deepEqual(await snapshot(), before);
  // The one well-formed login among them ('SQL in login') counts as an ordinary failed attempt.
  const counted = await db.query<Array<{ key: string }>>('SELECT `key` FROM login_limits ORDER BY `key`');
  t.deepEqual(
    counted.map((row) => row.key.replace(/\/.*/, '/…')),
    ['login_ip:127.0.0.1', 'login_pair:127.0.0.1/…'],
    JSON.stringify(counted),
  );
  t.is((await service.request('/livez')).status, 200);
  t.is(service.process.exitCode, null);
  // The real user is untouched and still logs in.
  t.is((await service.request('/api/login', { body: { username: 'victor', password: 'victor-password' } })).status, 200);
});

test.serial('status codes: 413 for size, 415 for media type, 400 for the rest', async (t) => {
  const statusOf = async (what: string) => {
    const found = hostile.find(([name]) => name === what);
    if (!found) throw new Error(what);
    const [, path, body, headers] = found;
    return (await service.request(path, { body, headers })).status;
  };
  t.is(await statusOf('huge body'), 413);
  t.is(await statusOf('huge body, chunked'), 413);
  t.is(await statusOf('missing content type'), 415);
  t.is(await statusOf('compressed body'), 415);
  t.is(await statusOf('invalid UTF-8 byte'), 400);
  t.is(await statusOf('nested JSON'), 400);
  t.is(await statusOf('newline in login username'), 400);
});

function assertSecurityHeaders(t: import('ava').ExecutionContext, reply: { headers: Record<string, unknown> }, what: string) {
  t.is(reply.headers['x-content-type-options'], 'nosniff', what);
  t.is(reply.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'", what);
  t.is(reply.headers['x-frame-options'], 'DENY', what);
  t.is(reply.headers['cache-control'], 'no-store', what);
  t.is(reply.headers['x-powered-by'], undefined, what);
  t.is(reply.headers['server'], undefined, what);
  t.is(reply.headers['strict-transport-security'], undefined, `${what}: no HSTS over plain HTTP`);
}

test.serial('every response carries the security headers: success, client errors, server errors', async (t) => {
  const replies: Array<[string, Reply]> = [
    ['200 /livez', await service.request('/livez')],
    ['200 /health', await service.request('/health')],
    ['401', await service.request('/api/me')],
    ['404', await service.request('/nowhere')],
    ['405', await service.request('/api/login', { method: 'GET' })],
    ['413', await service.request('/api/register', { body: 'x'.repeat(5000), headers: json })],
    ['415', await service.request('/api/register', { body: 'x', headers: { 'content-type': 'text/plain' } })],
    ['500', await service.request('/__fault/throw')],
  ];
  for (const [what, reply] of replies) assertSecurityHeaders(t, reply, what);
  const login = await service.request('/api/login', { body: { username: 'victor', password: 'victor-password' } });
  t.is(login.headers['cache-control'], 'no-store', 'a token is never cached');
});

test('the security headers are on answers to requests Node cannot parse, too', async (t) => {
  const { data } = await rawExchange(service.port, (socket) => socket.write('GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n'), 5000);
  t.regex(data, /^HTTP\/1\.1 400 /);
  t.regex(data, /\r\nX-Content-Type-Options: nosniff\r\n/i);
  t.regex(data, /\r\nContent-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n/i);
});

/** Sends `head`, then one more byte every 200 ms for as long as the server keeps the socket. */
async function trickle(head: string, byte: string, timeoutMs: number): Promise<{ data: string; ms: number }> {
  let timer: NodeJS.Timeout | undefined;
  return rawExchange(service.port, (socket) => {
    socket.write(head);
    timer = setInterval(() => socket.writable && socket.write(byte), 200);
  }, timeoutMs).finally(() => clearInterval(timer));
}

test('a slowloris client that never finishes its headers is cut off', async (t) => {
  // The socket is never idle: one more header byte every 200 ms, forever.
  const { data, ms } = await trickle('GET /livez HTTP/1.1\r\nHost: x\r\n', 'X', 10_000);
  // HTTP_HEADERS_TIMEOUT_MS=1500, checked every second: cut between 1.5 and 2.5 s, well before
  // the 5 s request timeout could have done it.
  t.true(ms >= 1400 && ms < 4400, `closed after ${ms} ms`);
  t.regex(data, /^HTTP\/1\.1 408 /);
  t.is((await service.request('/livez')).status, 200);
});

test('a client that sends its body too slowly is cut off', async (t) => {
  const head = 'POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{';
  const { data, ms } = await trickle(head, ' ', 12_000);
  // HTTP_REQUEST_TIMEOUT_MS=5000, checked every second.
  t.true(ms >= 4500 && ms < 7500, `closed after ${ms} ms`);
  t.regex(data, /^HTTP\/1\.1 408 /);
  t.is((await service.request('/livez')).status, 200);
});

test('an idle keep-alive connection is closed', async (t) => {
  const { data, ms } = await rawExchange(service.port, (socket) => socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n\r\n'), 8000);
  t.regex(data, /^HTTP\/1\.1 200 /);
  // HTTP_KEEP_ALIVE_TIMEOUT_MS=1000, well before Node's default of 5 s.
  t.true(ms >= 900 && ms < 3000, `closed after ${ms} ms`);
});
