// Configuration: defaults, MYSQL_URL, and one message naming every bad variable.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig } from '../src/platform/config';
import { MAIN, ROOT, tempDir } from './helpers/service';

test('defaults follow the documented configuration', (t) => {
  const config = loadConfig({ NODE_ENV: 'test' });
  t.is(config.port, 8000);
  t.is(config.host, '127.0.0.1');
  t.like(config.db, {
    host: '127.0.0.1',
    port: 3306,
    user: 'root',
    password: '',
    database: 'resilient_api',
    connectTimeoutMs: 2000,
    queryTimeoutMs: 5000,
    retries: 3,
    poolSize: 10,
  });
  t.is(config.log.dir, 'logs');
  t.is(config.log.level, 'info');
  t.is(config.rateLimitPerMinute, 600);
  t.is(config.loginMaxFailures, 10);
  t.deepEqual(config.trustedProxies, []);
  t.deepEqual(config.backup, { dir: 'backups', keep: 7, keepPredeploy: 3, timeoutMs: 3_600_000, onStart: false, beforeMigrate: false });
  t.is(config.apiInstances, 1);
  t.false(config.faultInjection);
  t.false(config.faultFailingMigration);
  t.true(Object.isFrozen(config) && Object.isFrozen(config.db));
});

test('production listens on every interface and runs a worker per core', (t) => {
  const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) });
  t.is(config.host, '0.0.0.0');
  t.is(config.apiInstances, 'max');
  t.false(config.seedDemoUser);
  t.true(config.backup.beforeMigrate, 'a backup is taken before migrating in production');
  t.false(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40), BACKUP_BEFORE_MIGRATE: '0' }).backup.beforeMigrate);
});

test('the failing migration is a fault-injection switch only', (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'test', FAULT_FAILING_MIGRATION: '1' }), {
    message: /FAULT_FAILING_MIGRATION needs FAULT_INJECTION=1/,
  });
  t.true(loadConfig({ NODE_ENV: 'test', FAULT_INJECTION: '1', FAULT_FAILING_MIGRATION: '1' }).faultFailingMigration);
});

test('MYSQL_URL overrides the separate variables', (t) => {
  const config = loadConfig({
    NODE_ENV: 'test',
    MYSQL_HOST: 'ignored',
    MYSQL_URL: 'mysql://app:p%40ss@db.internal:3307/accounts',
  });
  t.like(config.db, { host: 'db.internal', port: 3307, user: 'app', password: 'p@ss', database: 'accounts' });
});

test('every bad variable is named in one error', (t) => {
  const error = t.throws(
    () =>
      loadConfig({
        NODE_ENV: 'production',
        PORT: 'abc',
        DB_RETRIES: '0',
        JWT_SECRET: 'short',
        MYSQL_URL: 'mysql://u:hunter2@/',
        LOG_LEVEL: 'loud',
        TLS_CERT_FILE: '/tmp/cert.pem',
      }),
    { instanceOf: ConfigError },
  ) as ConfigError;
  for (const name of ['PORT', 'DB_RETRIES', 'JWT_SECRET', 'MYSQL_URL', 'LOG_LEVEL', 'TLS_CERT_FILE and TLS_KEY_FILE']) {
    t.true(error.problems.some((p) => p.startsWith(name)), `${name} is named`);
  }
  t.false(error.message.includes('hunter2'), 'a password in MYSQL_URL is not echoed');
});

test('JWT_SECRET_FILE: read when JWT_SECRET is not set; a missing or short one is named', (t) => {
  const dir = tempDir('ra-jwt-file-');
  const file = path.join(dir, 'jwt');
  writeFileSync(file, `${'f'.repeat(40)}\n`);
  t.like(loadConfig({ NODE_ENV: 'production', JWT_SECRET_FILE: file }).jwt, { secret: 'f'.repeat(40), source: `JWT_SECRET_FILE (${file})` });
  t.is(loadConfig({ NODE_ENV: 'production', JWT_SECRET_FILE: file, JWT_SECRET: 'e'.repeat(40) }).jwt.secret, 'e'.repeat(40));
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET_FILE: path.join(dir, 'none') }), {
    message: new RegExp(`JWT_SECRET_FILE \\(${dir}/none\\) cannot be read: no such file`),
  });
  writeFileSync(file, 'short\n');
  t.throws(() => loadConfig({ NODE_ENV: 'test', JWT_SECRET_FILE: file }), {
    message: /JWT_SECRET_FILE \(.*\) must be at least 32 characters \(got 5\)/,
  });
});

test('development has a database of its own by default', (t) => {
  t.is(loadConfig({ NODE_ENV: 'development', JWT_SECRET: 'd'.repeat(40) }).db.database, 'resilient_api_dev');
  t.is(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) }).db.database, 'resilient_api');
  t.is(loadConfig({ NODE_ENV: 'development', JWT_SECRET: 'd'.repeat(40), MYSQL_DATABASE: 'mine' }).db.database, 'mine');
});

test('a bad configuration stops the process with a non-zero exit and one clear message', (t) => {
  const logDir = tempDir('ra-config-');
  const result = spawnSync(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'], NODE_ENV: 'test', LOG_DIR: logDir, PORT: 'abc', DB_RETRIES: '0' },
    encoding: 'utf8',
    timeout: 10_000,
  });
  t.is(result.status, 78, 'EX_CONFIG');
  const lines = result.stderr.trim().split('\n');
  t.is(lines.length, 1, result.stderr);
  t.regex(lines[0] ?? '', /Invalid configuration: PORT must be .*; DB_RETRIES must be/);
  t.regex(readFileSync(path.join(logDir, 'backend.log'), 'utf8'), / - config - FATAL - Invalid configuration: PORT/);
});

test('protection settings: defaults, and bad values named', (t) => {
  const config = loadConfig({ NODE_ENV: 'test' });
  t.is(config.loginBlockSeconds, 900);
  t.is(config.loginMaxFailuresPerIpPerDay, 100);
  t.like(config.http, { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5000 });
  t.is(config.tls, undefined);
  t.deepEqual(loadConfig({ NODE_ENV: 'test', TRUSTED_PROXIES: ' 10.0.0.1, 10.1.0.0/16 ,::1' }).trustedProxies, ['10.0.0.1', '10.1.0.0/16', '::1']);

  const error = t.throws(
    () =>
      loadConfig({
        NODE_ENV: 'test',
        RATE_LIMIT_PER_MINUTE: '-1',
        LOGIN_MAX_FAILURES: '0',
        LOGIN_BLOCK_SECONDS: 'soon',
        TRUSTED_PROXIES: '10.0.0.1, proxy.internal',
        HTTP_HEADERS_TIMEOUT_MS: '20000',
        HTTP_REQUEST_TIMEOUT_MS: '10000',
      }),
    { instanceOf: ConfigError },
  ) as ConfigError;
  for (const name of ['RATE_LIMIT_PER_MINUTE', 'LOGIN_MAX_FAILURES', 'LOGIN_BLOCK_SECONDS', 'TRUSTED_PROXIES', 'HTTP_HEADERS_TIMEOUT_MS']) {
    t.true(error.problems.some((p) => p.startsWith(name)), `${name} is named`);
  }
  t.regex(error.message, /TRUSTED_PROXIES: "proxy\.internal" is not an IP address or CIDR range/);
});

test('observability and overload settings: defaults, and every bad one named', (t) => {
  const config = loadConfig({ NODE_ENV: 'test', PM2_HOME: '/tmp/pm2-home', PORT: '8123' });
  t.deepEqual(config.observability, {
    metricsEnabled: true,
    metricsSocketDir: '/tmp/pm2-home/resilient-api/8123',
    requestLogSample: 1,
    slowRequestMs: 1000,
    metricsAllow: ['127.0.0.0/8', '::1'],
    metricsToken: undefined,
  });
  t.deepEqual(config.overload, { maxEventLoopDelayMs: 1000, maxHeapPercent: 90, maxPoolWaiting: 100 });
  t.is(config.db.slowQueryMs, 500);
  const tuned = loadConfig({ NODE_ENV: 'test', METRICS_ENABLED: 'off', REQUEST_LOG_SAMPLE: '0.25', METRICS_SOCKET_DIR: '/run/ra' });
  t.false(tuned.observability.metricsEnabled);
  t.is(tuned.observability.requestLogSample, 0.25);
  t.is(tuned.observability.metricsSocketDir, '/run/ra');

  const error = t.throws(
    () =>
      loadConfig({
        NODE_ENV: 'test',
        METRICS_ENABLED: 'maybe',
        REQUEST_LOG_SAMPLE: '1.5',
        SLOW_REQUEST_MS: '-1',
        SLOW_QUERY_MS: 'slow',
        OVERLOAD_EVENT_LOOP_DELAY_MS: 'x',
        OVERLOAD_HEAP_PERCENT: '101',
        OVERLOAD_DB_POOL_WAITING: '-5',
      }),
    { instanceOf: ConfigError },
  ) as ConfigError;
  const names = ['METRICS_ENABLED', 'REQUEST_LOG_SAMPLE', 'SLOW_REQUEST_MS', 'SLOW_QUERY_MS', 'OVERLOAD_EVENT_LOOP_DELAY_MS', 'OVERLOAD_HEAP_PERCENT', 'OVERLOAD_DB_POOL_WAITING'];
  for (const name of names) t.true(error.problems.some((p) => p.startsWith(name)), `${name} is named`);
});
