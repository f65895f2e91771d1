// The environment, read once into one typed, validated, frozen object.
// Every problem is collected first so one message can name every bad variable.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAddressList } from './util/addresses';
import { keptSecret, readSecretFile } from './secretFile';
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
  /** METRICS_ALLOW: addresses and CIDR ranges that may read /metrics and /status/summary. */
  readonly metricsAllow: readonly string[];
  /** METRICS_TOKEN: a bearer token that lets any client read them; undefined: none. */
  readonly metricsToken: string | undefined;
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
    /** Where the secret came from: JWT_SECRET, JWT_SECRET_FILE or the generated file (never the secret). */
    readonly source: string;
    readonly ttlSeconds: number;
    readonly issuer: string;
  };
  readonly apiInstances: number | 'max';
  /**
   * Password hashes computed at once by this process. argon2id takes 19 MiB and a core for ~40 ms:
   * more at once than this process's share of the cores only adds memory and starves the event
   * loop, without adding throughput.
   */
  readonly passwordHashConcurrency: number;
  /**
   * Password hashes (logins, registrations) allowed to wait for a hash thread in this process;
   * past it they are refused at once with 503, so a flood cannot make every login wait longer and longer.
   */
  readonly passwordHashQueueLimit: number;
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
    /** How many backups taken at deploys (before migrating) are kept, apart from the scheduled ones. */
    readonly keepPredeploy: number;
    /** Bound on one dump; a dump still running then is killed and reported as failed. */
    readonly timeoutMs: number;
    /** The scheduled PM2 app also backs up when launched outside its schedule (start, reload: a deploy). */
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
  /**
   * Test-only routes that crash, hang or exit on demand (loopback clients only). Never on by
   * default; in production only with FAULT_INJECTION_IN_PRODUCTION set to FAULT_INJECTION_PRODUCTION_OPT_IN.
   */
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
const MIN_METRICS_TOKEN_LENGTH = 32;
/** Who may read /metrics and /status/summary when METRICS_ALLOW is not set: this host only. */
export const DEFAULT_METRICS_ALLOW: readonly string[] = ['127.0.0.0/8', '::1'];
/**
 * FAULT_INJECTION in production needs this exact value in FAULT_INJECTION_IN_PRODUCTION: a drill's
 * FAULT_INJECTION=1 left exported in the shell that starts PM2 must not reach a production service.
 */
export const FAULT_INJECTION_PRODUCTION_OPT_IN = 'i-understand-this-lets-local-clients-crash-the-service';

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

function readDatabase(read: EnvReader, mode: RunMode): DatabaseConfig {
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
    // Development has a database of its own: a development run never touches production's data.
    database: read.string('MYSQL_DATABASE', mode === 'development' ? 'resilient_api_dev' : 'resilient_api'),
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

/** What signs the tokens, and where it came from (for the start-up log; never the secret). */
interface JwtSecret {
  readonly secret: string;
  readonly source: string;
}

const tooShort = (what: string, length: number): string =>
  `${what} must be at least ${MIN_JWT_SECRET_LENGTH} characters (got ${length})`;

/**
 * JWT_SECRET, else the file JWT_SECRET_FILE names, else a secret generated once and kept in the
 * working directory (the project root under PM2): `.jwt-secret` in production, `.dev-jwt-secret`
 * in development (so tokens survive restarts and reloads, and every worker signs alike). Tests
 * get a random one. The secret never has to travel in PM2's environment or on a command line.
 */
function readJwtSecret(read: EnvReader, mode: RunMode): JwtSecret {
  const fromEnv = read.raw('JWT_SECRET');
  if (fromEnv !== undefined) {
    if (fromEnv.length < MIN_JWT_SECRET_LENGTH) read.problems.push(tooShort('JWT_SECRET', fromEnv.length));
    return { secret: fromEnv, source: 'JWT_SECRET' };
  }
  const file = read.raw('JWT_SECRET_FILE');
  if (file !== undefined) {
    const source = `JWT_SECRET_FILE (${file})`;
    let secret: string;
    try {
      secret = readSecretFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      read.problems.push(`${source} cannot be read: ${code === 'ENOENT' ? 'no such file' : code}`);
      return { secret: '', source };
    }
    if (secret.length < MIN_JWT_SECRET_LENGTH) read.problems.push(tooShort(source, secret.length));
    return { secret, source };
  }
  if (mode === 'test') return { secret: randomBytes(48).toString('base64url'), source: 'generated for this test run' };

  const kept = path.resolve(mode === 'production' ? '.jwt-secret' : '.dev-jwt-secret');
  try {
    const { secret, created } = keptSecret(kept);
    if (secret.length < MIN_JWT_SECRET_LENGTH) {
      // Replacing it here could race with a sibling worker reading it: the operator decides.
      read.problems.push(`${tooShort(kept, secret.length)}: delete it to have a new one generated, or set JWT_SECRET or JWT_SECRET_FILE`);
    }
    return { secret, source: `${kept}${created ? ' (generated now)' : ''}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    if (mode === 'development') return { secret: randomBytes(48).toString('base64url'), source: `random (cannot keep ${kept}: ${code})` };
    read.problems.push(
      `JWT_SECRET is required in production (at least ${MIN_JWT_SECRET_LENGTH} characters): set JWT_SECRET or ` +
        `JWT_SECRET_FILE, or let the service keep one in ${kept} (cannot: ${code})`,
    );
    return { secret: '', source: kept };
  }
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
  const { problems } = parseAddressList(entries);
  if (problems.length > 0) read.problems.push(`TRUSTED_PROXIES: ${problems.join(', ')}`);
  return entries;
}

/** METRICS_ALLOW: comma-separated addresses or CIDR ranges; `none` allows no address (token only). */
function readMetricsAllow(read: EnvReader): string[] {
  const value = read.raw('METRICS_ALLOW');
  if (value === undefined) return [...DEFAULT_METRICS_ALLOW];
  if (value.toLowerCase() === 'none') return [];
  const entries = value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  const { problems } = parseAddressList(entries);
  if (problems.length > 0) read.problems.push(`METRICS_ALLOW: ${problems.join(', ')}`);
  return entries;
}

/** METRICS_TOKEN: never echoed, only its length. */
function readMetricsToken(read: EnvReader): string | undefined {
  const token = read.raw('METRICS_TOKEN');
  if (token !== undefined && token.length < MIN_METRICS_TOKEN_LENGTH) {
    read.problems.push(`METRICS_TOKEN must be at least ${MIN_METRICS_TOKEN_LENGTH} characters (got ${token.length})`);
    return undefined;
  }
  return token;
}

/** FAULT_INJECTION, refused in production unless deliberately opted into. */
function readFaultInjection(read: EnvReader, mode: RunMode): boolean {
  const on = read.flag('FAULT_INJECTION');
  const optIn = read.raw('FAULT_INJECTION_IN_PRODUCTION');
  if (optIn !== undefined && optIn !== FAULT_INJECTION_PRODUCTION_OPT_IN) {
    read.problems.push(`FAULT_INJECTION_IN_PRODUCTION must be exactly "${FAULT_INJECTION_PRODUCTION_OPT_IN}" when set`);
  } else if (on && mode === 'production' && optIn === undefined) {
    read.problems.push(
      'FAULT_INJECTION=1 is refused in production: its routes let local clients crash the service ' +
        '(a drill left exported?); unset FAULT_INJECTION, or also set ' +
        `FAULT_INJECTION_IN_PRODUCTION=${FAULT_INJECTION_PRODUCTION_OPT_IN}`,
    );
  }
  return on;
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
  return path.resolve(read.string('METRICS_SOCKET_DIR', path.join(pm2Home(read.raw('PM2_HOME')), 'resilient-api', String(port))));
}

/** PM2's home folder: PM2_HOME, else ~/.pm2, as PM2 itself decides. */
export function pm2Home(variable: string | undefined = process.env['PM2_HOME']): string {
  return variable ?? path.join(os.homedir(), '.pm2');
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
    db: readDatabase(read, mode),
    log: {
      ...readLogFiles(read),
      level: read.oneOf<LogLevel>('LOG_LEVEL', 'info', LOG_LEVELS),
      console: mode === 'development',
    },
    jwt: {
      ...readJwtSecret(read, mode),
      ttlSeconds: read.integer('JWT_TTL_SECONDS', 3600, 60, 30 * 24 * 3600),
      issuer: 'resilient-api',
    },
    apiInstances,
    passwordHashConcurrency:
      read.raw('PASSWORD_HASH_CONCURRENCY') === undefined
        ? coresPerWorker(apiInstances)
        : read.integer('PASSWORD_HASH_CONCURRENCY', 1, 1, 64),
    passwordHashQueueLimit: read.integer('PASSWORD_HASH_QUEUE_LIMIT', 64, 1, 100_000),
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
      keepPredeploy: read.integer('BACKUP_KEEP_PREDEPLOY', 3, 1, 1000),
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
      metricsAllow: readMetricsAllow(read),
      metricsToken: readMetricsToken(read),
    },
    overload: {
      maxEventLoopDelayMs: read.integer('OVERLOAD_EVENT_LOOP_DELAY_MS', 1000, 0, 600_000),
      maxHeapPercent: read.integer('OVERLOAD_HEAP_PERCENT', 90, 0, 100),
      maxPoolWaiting: read.integer('OVERLOAD_DB_POOL_WAITING', 100, 0, 1_000_000),
    },
    faultInjection: readFaultInjection(read, mode),
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
