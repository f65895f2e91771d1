// HTTPS with a certificate made at run time: a verified round trip, HSTS, and a clear start-up
// error naming the variable when a file is missing, unreadable or not what it should be.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig } from '../src/platform/config';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { request } from './helpers/http';
import { MAIN, ROOT, startService, tempDir, type Service } from './helpers/service';
import { createTestCertificate, type TestCertificate } from './helpers/tls';

let db: TestDatabase;
let certificate: TestCertificate;
let service: Service;

test.before(async () => {
  db = await createTestDatabase('ra_https');
  certificate = createTestCertificate();
  service = await startService({ env: { ...db.env, ...certificate.env } });
});

test.after.always(async () => {
  await service?.stop();
  await db?.drop();
  certificate?.remove();
});

test('register, login and /api/me over HTTPS, verified against the generated certificate', async (t) => {
  t.true(service.url.startsWith('https://'));
  const trusted = { ca: certificate.cert };
  const created = await service.request('/api/register', { ...trusted, body: { username: 'tess', password: 'tess-password' } });
  t.is(created.status, 201);
  const session = await service.request('/api/login', { ...trusted, body: { username: 'tess', password: 'tess-password' } });
  t.is(session.status, 200);
  const me = await service.request('/api/me', { ...trusted, headers: { authorization: `Bearer ${session.body.token}` } });
  t.is(me.status, 200);
  t.is(me.body.username, 'tess');
  for (const reply of [created, session, me]) t.is(reply.headers['strict-transport-security'], 'max-age=31536000');
  const health = await service.request('/health', trusted);
  t.is(health.status, 200);
  t.is(health.headers['strict-transport-security'], 'max-age=31536000');
  t.regex(service.log(), /Listening on https:\/\/127\.0\.0\.1:/);
});

test('errors are HTTPS and carry HSTS too; plain HTTP to the port gets nothing useful', async (t) => {
  const missing = await service.request('/nowhere', { ca: certificate.cert });
  t.is(missing.status, 404);
  t.is(missing.headers['strict-transport-security'], 'max-age=31536000');
  await t.throwsAsync(request(`http://127.0.0.1:${service.port}`, '/health', { timeoutMs: 3000 }));
});

test('a certificate that is missing, unreadable or not PEM is named in the configuration error', (t) => {
  const dir = tempDir('ra-badtls-');
  const garbage = path.join(dir, 'garbage.pem');
  writeFileSync(garbage, 'not a certificate');
  const locked = path.join(dir, 'locked.pem');
  writeFileSync(locked, certificate.cert);
  chmodSync(locked, 0o000);
  const problemsOf = (env: Record<string, string>) => {
    const error = t.throws(() => loadConfig({ NODE_ENV: 'test', ...env }), { instanceOf: ConfigError }) as ConfigError;
    return error.message;
  };
  t.regex(problemsOf({ TLS_CERT_FILE: path.join(dir, 'nope.pem'), TLS_KEY_FILE: certificate.keyFile }), /TLS_CERT_FILE \(.*nope\.pem\) cannot be read: no such file/);
  t.regex(problemsOf({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: garbage }), /TLS_KEY_FILE \(.*garbage\.pem\) does not hold a valid PEM private key/);
  t.regex(problemsOf({ TLS_CERT_FILE: garbage, TLS_KEY_FILE: certificate.keyFile }), /TLS_CERT_FILE \(.*\) does not hold a valid PEM certificate/);
  // root reads any file whatever its mode; the check is meaningful only for other users.
  if (process.getuid?.() !== 0) {
    t.regex(problemsOf({ TLS_CERT_FILE: locked, TLS_KEY_FILE: certificate.keyFile }), /TLS_CERT_FILE \(.*\) cannot be read: EACCES/);
  }
  // A read that fails for root too: a folder where a file should be.
  t.regex(problemsOf({ TLS_CERT_FILE: dir, TLS_KEY_FILE: certificate.keyFile }), /TLS_CERT_FILE \(.*\) cannot be read: EISDIR/);
  const other = createTestCertificate();
  try {
    t.regex(problemsOf({ TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: other.keyFile }), /TLS_KEY_FILE .* is not the private key of the certificate/);
  } finally {
    other.remove();
  }
});

test('the service does not start with a missing key file, and says which variable is wrong', (t) => {
  const logDir = tempDir('ra-badtls-');
  const result = spawnSync(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'], NODE_ENV: 'test', LOG_DIR: logDir, TLS_CERT_FILE: certificate.certFile, TLS_KEY_FILE: '/nonexistent/key.pem' },
    encoding: 'utf8',
    timeout: 10_000,
  });
  t.is(result.status, 78);
  t.regex(result.stderr, /Invalid configuration: TLS_KEY_FILE \(\/nonexistent\/key\.pem\) cannot be read: no such file/);
});
