// The environment, read once into one typed, validated, frozen object.
// Every problem is collected first so one message can name every bad variable.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseTrustedProxies } from './http/clientIp';
import { NamedError } from './util/errors';

export type RunMode = 'development' | 'production' | 'test';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'off';

export interface DatabaseConfig {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly retries: number;
  readonly poolSize: number;
  /** How often the health monitor pings the database. */
  readonly healthIntervalMs: number;
  /** A statement that takes at least this long is logged as a warning; 0 turns that off. */
  readonly slowQueryMs: number;
}

/** `host:port/database`, as logs and operator messages name the database. */
export function databaseTarget(db: DatabaseConfig): string {
  return `${db.host}:${db.port}/${db.database}`;
}

export interface ObservabilityConfig {
  /** Per-request metrics, default process metrics and GET /metrics; off: none of them. */
  readonly metricsEnabled: boolean;
  /** Where each process under PM2 serves its own metrics on a Unix socket for its siblings. */
  readonly metricsSocketDir: string;
  /** Fraction (0 to 1) of requests whose line is written to the request log. */
  readonly requestLogSample: number;
  /** A request that takes at least this long is logged as a warning, whatever the sample; 0: never. */
  readonly slowRequestMs: number;
}

/** The overload guard's limits; 0 turns a limit off. */
export interface OverloadConfig {
  readonly maxEventLoopDelayMs: number;
  /** Heap used, in percent of V8's heap limit. */
  readonly maxHeapPercent: number;
  /** Requests waiting for a pooled database connection. */
  readonly maxPoolWaiting: number;
}

export interface Config {
  readonly mode: RunMode;
  readonly host: string;
  readonly port: number;
  readonly db: DatabaseConfig;
  readonly log: {
    readonly dir: string;
    readonly level: LogLevel;
    readonly maxBytes: number;
    readonly backups: number;
    /** Log to the console as well (development). */
    readonly console: boolean;
  };
  readonly jwt: {
    readonly secret: string;
    readonly ttlSeconds: number;
    readonly issuer: string;
  };
  readonly apiInstances: number | 'max';
  /**
   * Password hashes computed at once by this process. scrypt takes 16 MiB and a core for ~40 ms:
   * more at once than this process's share of the cores only adds memory and starves the event
   * loop, without adding throughput.
   */
  readonly passwordHashConcurrency: number;
  readonly alertWebhookUrl: string | undefined;
  /** Both files read and checked at start-up: PEM certificate (chain) and its private key. */
  readonly tls: TlsConfig | undefined;
  /** Requests per client IP per minute, all workers together; 0 = off. */
  readonly rateLimitPerMinute: number;
  /** Consecutive failed logins per username and IP before that pair is blocked. */
  readonly loginMaxFailures: number;
  /** How long a blocked username+IP pair stays blocked. */
  readonly loginBlockSeconds: number;
  /** Failed logins per IP per day (any usernames) before the IP is blocked for a day. */
  readonly loginMaxFailuresPerIpPerDay: number;
  readonly trustedProxies: readonly string[];
  readonly backup: {
    readonly dir: string;
    readonly keep: number;
    /** Bound on one dump; a dump still running then is killed and reported as failed. */
    readonly timeoutMs: number;
    /** The scheduled PM2 app also backs up when PM2 first launches it, not only on schedule. */
    readonly onStart: boolean;
    /** Take a backup before applying pending migrations (production by default). */
    readonly beforeMigrate: boolean;
  };
  readonly http: {
    readonly maxBodyBytes: number;
    /** Bound on draining in-flight requests at shutdown. */
    readonly shutdownTimeoutMs: number;
    /** A client must send its request headers within this (slowloris). */
    readonly headersTimeoutMs: number;
    /** ... and its whole request, body included, within this. */
    readonly requestTimeoutMs: number;
    /** An idle keep-alive connection is closed after this. */
    readonly keepAliveTimeoutMs: number;
  };
  readonly observability: ObservabilityConfig;
  readonly overload: OverloadConfig;
  /** Test-only routes that crash, hang or exit on demand. Never on by default. */
  readonly faultInjection: boolean;
  /** With fault injection: throw outside any request this long after start-up (crash loops). */
  readonly faultCrashAfterMs: number | undefined;
  /** With fault injection: a migration that always fails is added after the released ones. */
  readonly faultFailingMigration: boolean;
  /** Create the `demo` user (development only). */
  readonly seedDemoUser: boolean;
}

export interface TlsConfig {
  readonly cert: string;
  readonly key: string;
}

export class ConfigError extends NamedError {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
  }
}

export type Env = Record<string, string | undefined>;

const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'off'];
const MIN_JWT_SECRET_LENGTH = 32;

/** Reads variables, remembering every problem instead of stopping at the first. */
export class EnvReader {
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max} (got "${value}")`);
      return fallback;
    }
    return Number(value);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      this.problems.push(`${name} must be one of ${allowed.join(', ')} (got "${value}")`);
      return fallback;
    }
    return value as T;
  }

  flag(name: string, fallback = false): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(value)) return true;
    if (['0', 'false', 'no', 'off'].includes(value)) return false;
    this.problems.push(`${name} must be true or false (got "${value}")`);
    return false;
  }

  /** A number from 0 to 1, such as a sampling rate. */
  fraction(name: string, fallback: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^(?:0|1|0?\.\d+|1\.0*)$/.test(value)) {
      this.problems.push(`${name} must be a number from 0 to 1 (got "${value}")`);
      return fallback;
    }
    return Number(value);
  }

  url(name: string, protocols: readonly string[]): URL | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) throw new Error('protocol');
      return parsed;
    } catch {
      this.problems.push(`${name} must be a ${protocols.join(' or ')}// URL (got "${redactUrl(value)}")`);
      return undefined;
    }
  }
}

/** Never echo a password from a URL back into a message. */
function redactUrl(value: string): string {
  return value.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}

function readDatabase(read: EnvReader): DatabaseConfig {
  const common = {
    connectTimeoutMs: read.integer('DB_CONNECT_TIMEOUT_MS', 2000, 100, 60_000),
    queryTimeoutMs: read.integer('DB_QUERY_TIMEOUT_MS', 5000, 100, 600_000),
    retries: read.integer('DB_RETRIES', 3, 1, 10),
    poolSize: read.integer('DB_POOL_SIZE', 10, 1, 1000),
    healthIntervalMs: read.integer('DB_HEALTH_INTERVAL_MS', 500, 50, 10_000),
    slowQueryMs: read.integer('SLOW_QUERY_MS', 500, 0, 600_000),
  };
  const fromParts = {
    host: read.string('MYSQL_HOST', '127.0.0.1'),
    port: read.integer('MYSQL_PORT', 3306, 1, 65535),
    user: read.string('MYSQL_USER', 'root'),
    password: read.raw('MYSQL_PASSWORD') ?? '',
    database: read.string('MYSQL_DATABASE', 'resilient_api'),
  };
  if (!/^[A-Za-z0-9_]{1,64}$/.test(fromParts.database)) {
    read.problems.push(`MYSQL_DATABASE must be 1 to 64 letters, digits or _ (got "${fromParts.database}")`);
  }
  const url = read.url('MYSQL_URL', ['mysql:', 'mariadb:']);
  if (!url) return { ...fromParts, ...common };

  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const port = url.port === '' ? 3306 : Number(url.port);
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database) || url.hostname === '') {
    read.problems.push(
      `MYSQL_URL must look like mysql://user:pass@host:port/database (got "${redactUrl(url.href)}")`,
    );
  }
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    user: decodeURIComponent(url.username) || 'root',
    password: decodeURIComponent(url.password),
    database,
    ...common,
  };
}

/**
 * In development a missing JWT_SECRET is generated once and kept in a git-ignored file,
 * so tokens survive the hot-reload restarts.
 */
function developmentSecret(): string {
  try {
    return persistentSecret(path.resolve('.dev-jwt-secret'));
  } catch {
    return randomBytes(48).toString('base64url');
  }
}

/**
 * A random secret kept in `file` (mode 0600) so that it survives restarts: made on first use,
 * and again if the file holds one too short to sign with.
 */
export function persistentSecret(file: string): string {
  if (existsSync(file)) {
    const saved = readFileSync(file, 'utf8').trim();
    if (saved.length >= MIN_JWT_SECRET_LENGTH) return saved;
  }
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}

function readJwtSecret(read: EnvReader, mode: RunMode): string {
  const secret = read.raw('JWT_SECRET');
  if (secret !== undefined && secret.length >= MIN_JWT_SECRET_LENGTH) return secret;
  if (mode === 'production') {
    read.problems.push(
      secret === undefined
        ? `JWT_SECRET is required in production (at least ${MIN_JWT_SECRET_LENGTH} characters)`
        : `JWT_SECRET must be at least ${MIN_JWT_SECRET_LENGTH} characters (got ${secret.length})`,
    );
    return '';
  }
  if (secret !== undefined) {
    read.problems.push(`JWT_SECRET must be at least ${MIN_JWT_SECRET_LENGTH} characters (got ${secret.length})`);
    return '';
  }
  return mode === 'test' ? randomBytes(48).toString('base64url') : developmentSecret();
}

function readInstances(read: EnvReader, mode: RunMode): number | 'max' {
  const value = read.raw('API_INSTANCES')?.toLowerCase();
  if (value === undefined) return mode === 'production' ? 'max' : 1;
  if (value === 'max') return 'max';
  return read.integer('API_INSTANCES', 1, 1, 256);
}

/** This process's share of the machine's cores, at least one. */
function coresPerWorker(instances: number | 'max'): number {
  const cores = os.availableParallelism();
  return instances === 'max' ? 1 : Math.max(1, Math.ceil(cores / instances));
}

function readTls(read: EnvReader): Config['tls'] {
  const certFile = read.raw('TLS_CERT_FILE');
  const keyFile = read.raw('TLS_KEY_FILE');
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    read.problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together');
    return undefined;
  }
  const cert = readPem(read, 'TLS_CERT_FILE', certFile, 'certificate', (pem) => new X509Certificate(pem));
  const key = readPem(read, 'TLS_KEY_FILE', keyFile, 'private key', (pem) => createPrivateKey(pem));
  if (cert === undefined || key === undefined) return undefined;
  let matches: boolean;
  try {
    matches = cert.parsed.checkPrivateKey(key.parsed);
  } catch {
    matches = false; // a key of a kind the certificate cannot be checked against is not its key
  }
  if (!matches) {
    read.problems.push(`TLS_KEY_FILE (${keyFile}) is not the private key of the certificate in TLS_CERT_FILE (${certFile})`);
    return undefined;
  }
  return { cert: cert.pem, key: key.pem };
}

/** The file's text and what `parse` made of it; a missing, unreadable or malformed file is named with its variable. */
function readPem<T>(
  read: EnvReader,
  name: string,
  file: string,
  holds: string,
  parse: (pem: string) => T,
): { pem: string; parsed: T } | undefined {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    read.problems.push(`${name} (${file}) cannot be read: ${code === 'ENOENT' ? 'no such file' : code}`);
    return undefined;
  }
  try {
    return { pem, parsed: parse(pem) };
  } catch {
    read.problems.push(`${name} (${file}) does not hold a valid PEM ${holds}`);
    return undefined;
  }
}

function readTrustedProxies(read: EnvReader): string[] {
  const value = read.raw('TRUSTED_PROXIES');
  if (value === undefined) return [];
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  const { problems } = parseTrustedProxies(entries);
  if (problems.length > 0) read.problems.push(`TRUSTED_PROXIES: ${problems.join(', ')}`);
  return entries;
}

/** backend.log's folder, size bound and number of rotated files. Read by the supervisor too. */
export function readLogFiles(read: EnvReader): { dir: string; maxBytes: number; backups: number } {
  return {
    dir: read.string('LOG_DIR', 'logs'),
    maxBytes: read.integer('LOG_MAX_BYTES', 10 * 1024 * 1024, 1024, 1024 ** 3),
    backups: read.integer('LOG_BACKUPS', 5, 1, 100),
  };
}

/** Where alerts are POSTed (undefined: alerts off). Read by the supervisor too. */
export function readAlertWebhookUrl(read: EnvReader): string | undefined {
  return read.url('ALERT_WEBHOOK_URL', ['http:', 'https:'])?.href;
}

/**
 * The folder of the per-process metrics sockets. It must be the same for every process of one
 * deployment (the api workers and the supervisor) and differ between deployments: PM2's home
 * (one per daemon and user) and the service's port make it so. Read by the supervisor too.
 */
export function readMetricsSocketDir(read: EnvReader, port: number): string {
  const pm2Home = read.raw('PM2_HOME') ?? path.join(os.homedir(), '.pm2');
  return path.resolve(read.string('METRICS_SOCKET_DIR', path.join(pm2Home, 'resilient-api', String(port))));
}

export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const mode = read.oneOf<RunMode>('NODE_ENV', 'development', ['development', 'production', 'test']);
  const port = read.integer('PORT', 8000, 0, 65535);

  const apiInstances = readInstances(read, mode);
  const config: Config = {
    mode,
    host: read.string('HOST', mode === 'production' ? '0.0.0.0' : '127.0.0.1'),
    port,
    db: readDatabase(read),
    log: {
      ...readLogFiles(read),
      level: read.oneOf<LogLevel>('LOG_LEVEL', 'info', LOG_LEVELS),
      console: mode === 'development',
    },
    jwt: {
      secret: readJwtSecret(read, mode),
      ttlSeconds: read.integer('JWT_TTL_SECONDS', 3600, 60, 30 * 24 * 3600),
      issuer: 'resilient-api',
    },
    apiInstances,
    passwordHashConcurrency:
      read.raw('PASSWORD_HASH_CONCURRENCY') === undefined
        ? coresPerWorker(apiInstances)
        : read.integer('PASSWORD_HASH_CONCURRENCY', 1, 1, 64),
    alertWebhookUrl: readAlertWebhookUrl(read),
    tls: readTls(read),
    rateLimitPerMinute: read.integer('RATE_LIMIT_PER_MINUTE', 600, 0, 100_000_000),
    loginMaxFailures: read.integer('LOGIN_MAX_FAILURES', 10, 1, 10_000),
    loginBlockSeconds: read.integer('LOGIN_BLOCK_SECONDS', 900, 1, 30 * 24 * 3600),
    loginMaxFailuresPerIpPerDay: read.integer('LOGIN_MAX_FAILURES_PER_IP', 100, 1, 1_000_000),
    trustedProxies: readTrustedProxies(read),
    backup: {
      dir: read.string('BACKUP_DIR', 'backups'),
      keep: read.integer('BACKUP_KEEP', 7, 1, 1000),
      timeoutMs: read.integer('BACKUP_TIMEOUT_SECONDS', 3600, 10, 7 * 24 * 3600) * 1000,
      onStart: read.flag('BACKUP_ON_START'),
      beforeMigrate: read.flag('BACKUP_BEFORE_MIGRATE', mode === 'production'),
    },
    http: {
      maxBodyBytes: read.integer('MAX_BODY_BYTES', 16 * 1024, 256, 10 * 1024 * 1024),
      shutdownTimeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', 10_000, 100, 120_000),
      headersTimeoutMs: read.integer('HTTP_HEADERS_TIMEOUT_MS', 10_000, 500, 600_000),
      requestTimeoutMs: read.integer('HTTP_REQUEST_TIMEOUT_MS', 30_000, 500, 3_600_000),
      keepAliveTimeoutMs: read.integer('HTTP_KEEP_ALIVE_TIMEOUT_MS', 5000, 100, 600_000),
    },
    observability: {
      metricsEnabled: read.flag('METRICS_ENABLED', true),
      metricsSocketDir: readMetricsSocketDir(read, port),
      requestLogSample: read.fraction('REQUEST_LOG_SAMPLE', 1),
      slowRequestMs: read.integer('SLOW_REQUEST_MS', 1000, 0, 600_000),
    },
    overload: {
      maxEventLoopDelayMs: read.integer('OVERLOAD_EVENT_LOOP_DELAY_MS', 1000, 0, 600_000),
      maxHeapPercent: read.integer('OVERLOAD_HEAP_PERCENT', 90, 0, 100),
      maxPoolWaiting: read.integer('OVERLOAD_DB_POOL_WAITING', 100, 0, 1_000_000),
    },
    faultInjection: read.flag('FAULT_INJECTION'),
    faultCrashAfterMs:
      read.raw('FAULT_CRASH_AFTER_MS') === undefined ? undefined : read.integer('FAULT_CRASH_AFTER_MS', 0, 0, 3_600_000),
    faultFailingMigration: read.flag('FAULT_FAILING_MIGRATION'),
    seedDemoUser: mode === 'development',
  };

  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    read.problems.push('HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS');
  }
  if (config.faultCrashAfterMs !== undefined && !config.faultInjection) {
    read.problems.push('FAULT_CRASH_AFTER_MS needs FAULT_INJECTION=1');
  }
  if (config.faultFailingMigration && !config.faultInjection) {
    read.problems.push('FAULT_FAILING_MIGRATION needs FAULT_INJECTION=1');
  }
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
