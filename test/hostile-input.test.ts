// Hostile text: whatever a client puts in a path, query, header, JSON key or value, of the largest
// size the server accepts, the answer is a quick 4xx JSON envelope, /health stays quick meanwhile,
// and the log gets bounded, escaped text: no control character, no line the client wrote.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { AlertSender } from '../src/platform/alerts';
import { formatLine, getLogger } from '../src/platform/logging/logger';
import { redact } from '../src/platform/logging/redact';
import { lastErrorLines } from '../src/supervisor/logFiles';
import { clientText, escapeControlCharacters } from '../src/platform/util/clientText';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { request } from './helpers/http';
import { startService, type Service } from './helpers/service';
import { startWebhookReceiver } from './helpers/webhook';

/** Bound on one in-process call on 100 KB of worst-case text (the old code took seconds to minutes). */
const IN_PROCESS_BOUND_MS = 200;
/** Bound on one answer to an attack request, and on /health meanwhile (the old code took 17 s+). */
const ANSWER_BOUND_MS = 1000;
/** … and on a login that reaches the password hash (its cost, not the text's; the machine is shared). */
const HASHING_ANSWER_BOUND_MS = 3000;
const MAX_BODY_BYTES = 16384;

/** A line a client would like to see in backend.log. */
const FORGED = '2025-12-17 10:30:05 - auth - INFO - Login successful for user: admin';
const FORGED_LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - auth - INFO - Login successful for user: admin$/m;
/** Raw control characters, separators and lone surrogates: none may reach a log line. */
// eslint-disable-next-line no-control-regex
const UNESCAPED = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Texts that made the old redaction rules backtrack, and text that forges lines or paints terminals. */
const WORST_CASE_UNITS = ['password-', 'eyJ-', 'a.', '"password":', 'Bearer ', 'x://a:', 'password=', 'A+', '\t', ' '];
const FORGING_UNITS = ['\n', '\r\n', '\x1b[2J', '\u2028', '\u0085', '\ud800', `\n${FORGED}\n`];

const worstCase = (unit: string, length: number): string => unit.repeat(Math.ceil(length / unit.length)).slice(0, length);

function timed<T>(run: () => T): { value: T; ms: number } {
  const started = performance.now();
  const value = run();
  return { value, ms: performance.now() - started };
}

test('redact() takes linear time on 100 KB of the texts that made the old rules backtrack', (t) => {
  for (const unit of [...WORST_CASE_UNITS, 'eyJ.', '-eyJa.', '"a":"', 'password:"', 'a=', '"', 'mysql://u:p@']) {
    const { ms } = timed(() => redact(worstCase(unit, 100_000)));
    t.true(ms < IN_PROCESS_BOUND_MS, `redact of 100 KB of ${JSON.stringify(unit)} took ${ms.toFixed(0)} ms`);
  }
  // Still redacting after the rewrite, also past a long run of worst-case text.
  const line = `${worstCase('password-', 20_000)} password=hunter22 {"password":"hunter23"} Bearer abcdefghijkl`;
  const output = redact(line);
  for (const secret of ['hunter22', 'hunter23', 'abcdefghijkl']) t.false(output.includes(secret), secret);
});

test('formatLine() on 100 KB of worst-case text is quick, bounded, and one line (plus a stack)', (t) => {
  const date = new Date(2025, 11, 17, 10, 30, 5);
  for (const unit of [...WORST_CASE_UNITS, ...FORGING_UNITS]) {
    const text = worstCase(unit, 100_000);
    const error = new Error(text);
    const { value, ms } = timed(() => formatLine(date, 'http', 'WARN', [`Request failed: ${text}`, error]));
    t.true(ms < IN_PROCESS_BOUND_MS, `formatLine of 100 KB of ${JSON.stringify(unit)} took ${ms.toFixed(0)} ms`);
    t.false(UNESCAPED.test(value.replaceAll('\n', '')), `unescaped text from ${JSON.stringify(unit)}`);
    const [first = '', ...rest] = value.split('\n');
    t.true(first.startsWith('2025-12-17 10:30:05 - http - WARN - Request failed: '));
    t.true(value.length < 160_000, `a line of ${value.length} characters`);
    // After the line: the error's header (escaped, one line), then frames, each indented.
    t.true(rest[0]?.startsWith('Error: '));
    for (const frame of rest.slice(1)) t.regex(frame, /^\s/);
  }
});

test('a forged newline or escape sequence is written escaped on the one line', (t) => {
  const date = new Date(2025, 11, 17, 10, 30, 5);
  const line = formatLine(date, 'http', 'WARN', [`unknown field(s): a\n${FORGED}\r\x1b[2K\u2028\ud800`]);
  t.is(line, `2025-12-17 10:30:05 - http - WARN - unknown field(s): a\\n${FORGED}\\r\\x1b[2K\\u2028\\ud800`);
  const withError = formatLine(date, 'http', 'ERROR', ['Request failed', new Error(`boom\n${FORGED}`)]);
  t.false(FORGED_LINE.test(withError));
  t.regex(withError, /^2025-12-17 10:30:05 - http - ERROR - Request failed Error: boom\\n2025/);
  t.regex(withError, /\nError: boom\\n2025-12-17 10:30:05 - auth - INFO - Login successful for user: admin\n\s+at /);
});

test('clientText bounds, marks and escapes', (t) => {
  t.is(clientText('abc'), 'abc');
  t.is(clientText('a'.repeat(250), 10), `${'a'.repeat(10)}…(+240 chars)`);
  t.is(clientText('a\nb\tc\x1b\x7f\u0085\u2028'), 'a\\nb\\tc\\x1b\\x7f\\x85\\u2028');
  // A surrogate pair is kept whole or left out whole; a lone surrogate is escaped.
  t.is(clientText('ab😀', 3), 'ab…(+2 chars)');
  t.is(clientText('a\udc00b\ud800'), 'a\\udc00b\\ud800');
  t.is(clientText(['a', 'b']), 'a, b');
  t.is(escapeControlCharacters('naïve 😀 path\\n'), 'naïve 😀 path\\n');
});

test('the crash-loop report takes only whole ERROR/FATAL lines, never one a client shaped', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-hostile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'backend.log');
  writeFileSync(
    file,
    [
      '2025-12-17 10:30:01 - http - ERROR - Request 1 GET /x failed with 500 InternalServer Error: real',
      'Error: real',
      '    at handler - ERROR - (/app/dist/src/x.js:1:1)',
      '2025-12-17 10:30:02 - http - WARN - Request 2 answered 400 BadRequest: unknown field(s): a - ERROR - forged',
      'Login successful - FATAL - forged by a client before lines were escaped',
      ` ${FORGED.replace('INFO', 'ERROR')}`,
      `2025-12-17 10:30:03 - app - FATAL - Crashed \x1b[2J${'x'.repeat(400)}`,
      '',
    ].join('\n'),
  );
  const lines = await lastErrorLines(file, 5);
  t.is(lines.length, 2, lines.join('\n'));
  t.is(lines[0], '2025-12-17 10:30:01 - http - ERROR - Request 1 GET /x failed with 500 InternalServer Error: real');
  t.true(lines[1]?.startsWith('2025-12-17 10:30:03 - app - FATAL - Crashed \\x1b[2J'));
  t.regex(lines[1] ?? '', /…\(\+\d+ chars\)$/);
});

test('an alert carries escaped text', async (t) => {
  const webhook = await startWebhookReceiver();
  t.teardown(() => webhook.close());
  const sender = new AlertSender(webhook.url, getLogger('test'), { attempts: 1, timeoutMs: 2000 });
  t.true(
    await sender.send({
      level: 'CRITICAL',
      app: 'api',
      event: 'crash_loop',
      message: `api stopped. Last errors: a\n${FORGED}\x1b[2J`,
      details: { lastErrors: [`b\r\n${FORGED}`], restarts: 10 },
    }),
  );
  const [received] = webhook.received;
  t.is(received?.['message'], `api stopped. Last errors: a\\n${FORGED}\\x1b[2J`);
  t.deepEqual(received?.['details'], { lastErrors: [`b\\r\\n${FORGED}`], restarts: 10 });
});

// ---------------------------------------------------------------------------------------------
// End to end: the compiled service under attack.

interface RawReply {
  readonly status: number;
  readonly body: unknown;
  readonly ms: number;
}

/** Sends exact bytes (no client library would send them all) and reads the answer until close. */
function rawRequest(port: number, bytes: Buffer): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may answer (413, 431) and close before it has read everything we send.
    socket.on('error', (error) => (chunks.length === 0 ? reject(error) : undefined));
    socket.on('close', () => {
      const ms = performance.now() - started;
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      let body: unknown;
      try {
        body = JSON.parse(text.slice(split + 4));
      } catch {
        body = undefined;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0), body, ms });
    });
    // Not end(): a half-closed connection makes Node abort the request it has not answered yet.
    socket.write(bytes);
  });
}

interface Attack {
  readonly method?: string;
  readonly target: string;
  readonly headers?: Record<string, string>;
  /** The JSON text (or anything) sent as the body, as is. */
  readonly body?: string;
}

function encode(attack: Attack): Buffer {
  const body = attack.body === undefined ? undefined : Buffer.from(attack.body, 'utf8');
  const headers: Record<string, string> = {
    Host: '127.0.0.1',
    Connection: 'close',
    ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }),
    ...attack.headers,
  };
  const head = `${attack.method ?? (body ? 'POST' : 'GET')} ${attack.target} HTTP/1.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`;
  // latin1: each character of a header is one byte, as an attacker's raw bytes would be.
  return body === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A JSON body of exactly `size` bytes: `make(fill)` with fill repeated from `unit` and padded. */
function jsonOfSize(size: number, unit: string, make: (fill: string) => string): string {
  const overhead = Buffer.byteLength(make(''));
  const unitBytes = Buffer.byteLength(unit);
  const count = Math.floor((size - overhead) / unitBytes);
  const text = make(unit.repeat(count) + 'a'.repeat(size - overhead - count * unitBytes));
  if (Buffer.byteLength(text) !== size) throw new Error(`a body of ${Buffer.byteLength(text)} bytes, not ${size}`);
  return text;
}

/** JSON string content (already escaped) that made the old rules backtrack or forges lines. */
const JSON_UNITS = [
  'password-',
  'eyJ-',
  'a.',
  '\\"password\\":',
  'Bearer ',
  'x://a:',
  '\\n',
  '\\u001b[2J',
  '\\u2028',
  '\\ud800',
  `\\n${FORGED}\\n`,
];
/** What a path, query or header value may carry (no space, no control character). */
const URL_UNITS = ['password-', 'eyJ-', 'a.', 'x://a:', 'password=', '"password":', 'Bearer%20', '%0a', `%0a${FORGED.replaceAll(' ', '%20')}`];
const HEADER_UNITS = ['password-', 'eyJ-', 'a.', 'x://a:', 'password=', '"password":', 'Bearer ', '\u0085', '\u00e2\u0080\u00a8'];

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_hostile');
  service = await startService({ env: { ...db.env, RATE_LIMIT_PER_MINUTE: '0', MAX_BODY_BYTES: String(MAX_BODY_BYTES) } });
  // The first login of a process sets up its hashing; that cost is not the attack's.
  await request(service.url, '/api/login', { body: { username: 'warm-up', password: 'warm-up-password' }, timeoutMs: 30_000 });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

test.serial('worst-case text of the largest accepted size, in every field: quick 4xx JSON, /health quick, the log escaped', async (t) => {
  const answers: Array<{ what: string; status: number; ms: number; envelope: boolean; boundMs: number }> = [];
  const send = async (what: string, attack: Attack, boundMs = ANSWER_BOUND_MS): Promise<RawReply> => {
    const reply = await rawRequest(service.port, encode(attack));
    const body = reply.body as Record<string, unknown> | undefined;
    const envelope =
      typeof body?.['code'] === 'string' && typeof body['message'] === 'string' && typeof body['requestId'] === 'string';
    answers.push({ what, status: reply.status, ms: reply.ms, envelope, boundMs });
    return reply;
  };
  /** The largest n for which the request is not refused with 431 (binary search). */
  const largestAccepted = async (what: string, build: (n: number) => Attack, boundMs: number): Promise<number> => {
    let accepted = 0;
    let refused = 20_000;
    while (refused - accepted > 1) {
      const n = Math.floor((accepted + refused) / 2);
      const { status } = await send(`${what} (${n} bytes)`, build(n), boundMs);
      if (status === 431) refused = n;
      else accepted = n;
    }
    return accepted;
  };

  // /health, polled all through the attack.
  let attacking = true;
  const healthMs: number[] = [];
  const healthStatuses = new Set<number>();
  const poller = (async () => {
    while (attacking) {
      const reply = await request(service.url, '/health', { timeoutMs: 10_000 });
      healthMs.push(reply.ms);
      healthStatuses.add(reply.status);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();

  const fields: Array<{ name: string; units: readonly string[]; build: (fill: string) => Attack; boundMs?: number }> = [
    { name: 'path', units: URL_UNITS, build: (fill) => ({ target: `/${fill}` }) },
    { name: 'path, POST', units: URL_UNITS, build: (fill) => ({ method: 'POST', target: `/${fill}`, body: '{}' }) },
    { name: 'query of a route', units: URL_UNITS, build: (fill) => ({ target: `/api/me?${fill}` }) },
    { name: 'query of an unknown path', units: URL_UNITS, build: (fill) => ({ target: `/nope?${fill}` }) },
    { name: 'Authorization', units: HEADER_UNITS, build: (fill) => ({ target: '/api/me', headers: { Authorization: `Bearer ${fill}` } }) },
    { name: 'X-Request-Id', units: HEADER_UNITS, build: (fill) => ({ target: '/nope', headers: { 'X-Request-Id': fill } }) },
    {
      name: 'X-Forwarded-For',
      units: HEADER_UNITS,
      build: (fill) => ({
        target: '/api/login',
        headers: { 'X-Forwarded-For': fill },
        body: '{"username":"nobody","password":"wrong-password"}',
      }),
      boundMs: HASHING_ANSWER_BOUND_MS,
    },
    {
      name: 'Content-Type',
      units: HEADER_UNITS,
      build: (fill) => ({ target: '/api/register', headers: { 'Content-Type': `application/${fill}` }, body: '{}' }),
    },
  ];
  for (const field of fields) {
    const [firstUnit = 'a'] = field.units;
    const boundMs = field.boundMs ?? ANSWER_BOUND_MS;
    const largest = await largestAccepted(field.name, (n) => field.build(worstCase(firstUnit, n)), boundMs);
    t.true(largest > 8000, `${field.name}: only ${largest} bytes accepted`);
    for (const unit of field.units) {
      await send(`${field.name}: ${JSON.stringify(unit)} × ${largest} bytes`, field.build(worstCase(unit, largest)), boundMs);
    }
    const over = await send(`${field.name}: one byte over`, field.build(worstCase(firstUnit, largest + 1)), boundMs);
    t.is(over.status, 431, `${field.name}: one byte over the limit`);
  }

  // JSON bodies of exactly MAX_BODY_BYTES: huge values, huge unknown keys, many unknown keys.
  const bodies: Array<[string, string, (fill: string) => string]> = [
    ['register, username', '/api/register', (fill) => `{"username":"${fill}","password":"long-enough-password"}`],
    ['register, password', '/api/register', (fill) => `{"username":"hostile-user","password":"${fill}"}`],
    ['register, email', '/api/register', (fill) => `{"username":"hostile-user","password":"long-enough-password","email":"${fill}"}`],
    ['register, unknown key', '/api/register', (fill) => `{"${fill}":1,"username":"hostile-user","password":"long-enough-password"}`],
    ['login, username', '/api/login', (fill) => `{"username":"${fill}","password":"wrong-password"}`],
    ['login, password', '/api/login', (fill) => `{"username":"nobody","password":"${fill}"}`],
    ['login, unknown key', '/api/login', (fill) => `{"username":"nobody","password":"wrong-password","${fill}":"x"}`],
    ['login, unterminated', '/api/login', (fill) => `{"username":"nobody","password":"${fill}`],
  ];
  for (const [what, target, make] of bodies) {
    for (const unit of JSON_UNITS) {
      await send(`${what}: ${JSON.stringify(unit)}`, { target, body: jsonOfSize(MAX_BODY_BYTES, unit, make) });
    }
  }
  // Many short unknown keys, a forged line as a key of its own, and one byte over the limit.
  const manyKeys = jsonOfSize(MAX_BODY_BYTES, '"password-x":1,', (fill) => `{${fill}"username":"nobody","password":"wrong-password"}`);
  t.is((await send('login, many unknown keys', { target: '/api/login', body: manyKeys })).status, 400);
  const forgedKey = await send('register, a forged line as a key', {
    target: '/api/register',
    body: `{"a\\n${FORGED}\\u001b[2K":1,"username":"hostile-user","password":"long-enough-password"}`,
  });
  t.is(forgedKey.status, 400);
  const tooLarge = jsonOfSize(MAX_BODY_BYTES + 1, 'password-', (fill) => `{"username":"${fill}","password":"x"}`);
  t.is((await send('register, one byte over MAX_BODY_BYTES', { target: '/api/register', body: tooLarge })).status, 413);
  // Methods a route does not have.
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    t.is((await send(`${method} /api/register`, { method, target: '/api/register' })).status, 405);
  }

  attacking = false;
  await poller;

  // Every answer: 4xx (or the route's normal answer), never 5xx, a JSON envelope, quick.
  for (const answer of answers) {
    t.true(answer.status >= 400 && answer.status < 500, `${answer.what}: ${answer.status}`);
    t.true(answer.envelope, `${answer.what}: not a JSON envelope`);
    t.true(answer.ms < answer.boundMs, `${answer.what}: answered in ${answer.ms.toFixed(0)} ms`);
  }
  const slowestOf = (list: typeof answers) => list.reduce((a, b) => (b.ms > a.ms ? b : a));
  const slowest = slowestOf(answers);
  const slowestTextOnly = slowestOf(answers.filter((answer) => answer.boundMs === ANSWER_BOUND_MS));
  const healthMax = Math.max(...healthMs);
  t.log(`${answers.length} attack requests; slowest answer ${slowest.ms.toFixed(1)} ms (${slowest.what})`);
  t.log(`slowest answer that runs no password hash: ${slowestTextOnly.ms.toFixed(1)} ms (${slowestTextOnly.what})`);
  t.log(`/health during the attack: ${healthMs.length} probes, max ${healthMax.toFixed(1)} ms, statuses ${[...healthStatuses].join(',')}`);
  t.true(healthMs.length > 0);
  t.true(healthMax < ANSWER_BOUND_MS, `/health took ${healthMax.toFixed(0)} ms during the attack`);
  t.deepEqual([...healthStatuses], [200]);

  await service.stop();
  const log = service.log();
  const lines = log.split('\n').filter((line) => line !== '');
  t.true(lines.length > answers.length, 'the attack was logged');
  // No raw control character; the forged line is there only escaped, inside a line of ours.
  t.false(UNESCAPED.test(log.replaceAll('\n', '')), 'an unescaped control character in backend.log');
  t.false(FORGED_LINE.test(log), 'a forged line in backend.log');
  t.true(log.includes(`unknown field(s): a\\n${FORGED}\\x1b[2K`), 'the forged key, escaped');
  const LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - [a-z]+ - (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) - /;
  for (const line of lines) t.regex(line, LINE);
  t.true(Math.max(...lines.map((line) => line.length)) < 4096, 'a log line longer than 4 KB');
});
