// backend.log: the line format and the events docs/operations.md promises, and never a secret.
import test from 'ava';
import { formatLine } from '../src/platform/logging/logger';
import { redact, secretsToMask } from '../src/platform/logging/redact';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { startService, type Service } from './helpers/service';

const LINE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - [a-z]+ - (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) - .+$/;
const JWT_SECRET = 'logging-test-secret-which-must-never-be-logged-42';

let db: TestDatabase;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_logging');
  service = await startService({ env: { ...db.env, JWT_SECRET, LOG_LEVEL: 'debug' } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
});

test.serial('login attempts, results and registrations are logged; no password, token or secret ever is', async (t) => {
  const password = 'Sup3r-Secret-Passw0rd';
  await service.request('/api/register', { body: { username: 'logan', password } });
  const failed = await service.request('/api/login', { body: { username: 'logan', password: `${password}-wrong` } });
  t.is(failed.status, 401);
  const ok = await service.request('/api/login', { body: { username: 'logan', password } });
  t.is(ok.status, 200);
  const token: string = ok.body.token;
  await service.request('/api/me', { headers: { authorization: `Bearer ${token}` } });
  await service.request('/api/me', { headers: { authorization: `Bearer ${token}x` } });
  // A malformed body that quotes the password must not smuggle it into a log line either.
  await service.request('/api/login', { body: `{"username":"logan","password":"${password}"`, headers: { 'content-type': 'application/json' } });
  await service.stop();

  const log = service.log();
  t.regex(log, / - auth - INFO - Registration attempt for user: logan\n/);
  t.regex(log, / - auth - INFO - User registered: logan \(id \d+\)\n/);
  t.regex(log, / - auth - INFO - Login attempt for user: logan\n/);
  t.regex(log, / - auth - WARN - Login failed for user: logan \(wrong password\)\n/);
  t.regex(log, / - auth - INFO - Login successful for user: logan\n/);
  t.regex(log, / - app - INFO - Starting resilient-api /);
  t.regex(log, / - lifecycle - INFO - Shutting down \(SIGTERM\)/);
  t.regex(log, / - lifecycle - INFO - Shutdown complete in \d+ ms; exiting with code 0/);
  for (const secret of [password, token, token.split('.')[2] ?? token, JWT_SECRET]) {
    t.false(log.includes(secret), `the log holds ${secret.slice(0, 12)}…`);
  }
  t.false(service.output().includes(password));
  // Every line that is not a stack frame has the documented shape.
  for (const line of log.split('\n').filter((l) => l !== '' && !/^\s+at |^\w*Error/.test(l))) {
    t.regex(line, LINE);
  }
});

test('formatLine puts an error message on the line and its stack on the lines after', (t) => {
  const error = new Error('boom');
  const text = formatLine(new Date(2025, 11, 17, 10, 30, 5), 'auth', 'ERROR', ['Request failed', error]);
  const [first, second] = text.split('\n');
  t.is(first, '2025-12-17 10:30:05 - auth - ERROR - Request failed Error: boom');
  t.is(second, 'Error: boom');
  t.regex(text, /\n\s+at /);
  t.is(formatLine(new Date(2025, 11, 17, 10, 30, 5), 'auth', 'INFO', ['Login attempt for user: demo']),
    '2025-12-17 10:30:05 - auth - INFO - Login attempt for user: demo');
});

test('redact removes passwords, tokens and registered secrets in every usual shape', (t) => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';
  const secrets = secretsToMask(['db-password-xyz', 'abc', undefined]);
  const cases: Array<[string, string]> = [
    ['{"username":"a","password":"hunter22"}', 'hunter22'],
    ['{"password": "with \\"quote\\" inside"}', 'inside'],
    ['{"newPassword":"abc12345"}', 'abc12345'],
    ['password=hunter22&user=a', 'hunter22'],
    ['Authorization: Bearer abc.def.ghijkl', 'abc.def.ghijkl'],
    [`token ${jwt} issued`, jwt],
    ['mysql://root:s3cr3t@db:3306/app', 's3cr3t'],
    ['connecting with db-password-xyz', 'db-password-xyz'],
    ['{"jwt_secret":"zzz-secret"}', 'zzz-secret'],
  ];
  for (const [input, secret] of cases) {
    const output = redact(input, secrets);
    t.false(output.includes(secret), `${input} → ${output}`);
    t.true(output.includes('[REDACTED]'), output);
  }
  t.is(redact('a short abc stays', secrets), 'a short abc stays', 'values too short to mask are left alone');
  t.is(redact('Login attempt for user: demo'), 'Login attempt for user: demo');
  t.is(redact('Authentication required (missing bearer token)'), 'Authentication required (missing bearer token)');
});
