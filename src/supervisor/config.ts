// The supervisor reads only what it needs, and never refuses to start over a bad value: it is
// the one process that must stay up to report on the others. Problems are reported, defaults used.
import net from 'node:net';
import { EnvReader, type Env, readAlertWebhookUrl, readLogFiles, readMetricsSocketDir } from '../platform/config';
import { localUrl } from '../platform/util/healthProbe';

export interface SupervisorConfig {
  readonly logDir: string;
  readonly logMaxBytes: number;
  readonly logBackups: number;
  /** How often backend.log's size is checked for rotation. */
  readonly logRotateCheckMs: number;
  readonly alertWebhookUrl: string | undefined;
  /** Bound on one webhook attempt. */
  readonly alertTimeoutMs: number;
  /**
   * The api app on this host, as probed (its /health); undefined when HOST, PORT or the TLS
   * settings are bad: probing a guessed address could report on someone else's service.
   */
  readonly serviceUrl: string | undefined;
  /** Why there is no serviceUrl. */
  readonly probeProblems: readonly string[];
  /** The PM2 app whose workers are pinged and memory-checked. */
  readonly apiName: string;
  /** An online api worker silent this long on IPC has a stuck event loop and is killed. */
  readonly stuckWorkerTimeoutMs: number;
  /** How often each online api worker is pinged. */
  readonly livenessIntervalMs: number;
  /** RSS past which an api worker is replaced by a graceful reload; 0: no bound. */
  readonly apiMaxMemoryBytes: number;
  /** At most one memory reload per worker within this time, however far past the bound it is. */
  readonly memoryReloadCooldownMs: number;
  readonly healthIntervalMs: number;
  /** Consecutive failed probes before the service counts as unhealthy. */
  readonly healthFailuresBeforeAlert: number;
  readonly maxRestarts: number;
  readonly stableWindowMs: number;
  /** The supervisor's own PM2 name: its exits are logged, never acted on. */
  readonly ownName: string;
  /** Where the api workers look for the supervisor's metrics socket; undefined: METRICS_ENABLED=0. */
  readonly metricsSocketDir: string | undefined;
  readonly problems: readonly string[];
}

export function loadSupervisorConfig(env: Env = process.env): SupervisorConfig {
  const read = new EnvReader(env);
  const target = readProbeTarget(env);
  const ownName = read.string('name', 'supervisor');
  const logFiles = readLogFiles(read);
  return {
    logDir: logFiles.dir,
    logMaxBytes: logFiles.maxBytes,
    logBackups: logFiles.backups,
    logRotateCheckMs: read.integer('LOG_ROTATE_CHECK_MS', 10_000, 100, 3_600_000),
    alertWebhookUrl: readAlertWebhookUrl(read),
    alertTimeoutMs: read.integer('ALERT_TIMEOUT_MS', 5000, 100, 60_000),
    serviceUrl: target.problems.length === 0 ? localUrl(target.host, target.port, target.tls) : undefined,
    probeProblems: target.problems,
    apiName: 'api',
    // Above the overload guard's 1 s of tolerated event-loop delay, with room for a major GC.
    stuckWorkerTimeoutMs: read.integer('STUCK_WORKER_TIMEOUT_MS', 10_000, 2000, 600_000),
    livenessIntervalMs: 1000,
    apiMaxMemoryBytes: read.integer('API_MAX_MEMORY_MB', 512, 0, 1024 * 1024) * 1024 * 1024,
    memoryReloadCooldownMs: 10 * 60 * 1000,
    healthIntervalMs: read.integer('HEALTH_CHECK_INTERVAL_MS', 5000, 100, 3_600_000),
    healthFailuresBeforeAlert: read.integer('HEALTH_ALERT_AFTER', 2, 1, 100),
    maxRestarts: read.integer('CRASH_LOOP_MAX_RESTARTS', 10, 1, 1000),
    stableWindowMs: read.integer('CRASH_LOOP_WINDOW_MS', 5 * 60 * 1000, 1000, 24 * 3600 * 1000),
    ownName,
    // The default folder is named after the port: with a bad PORT it would be a guess too.
    metricsSocketDir:
      read.flag('METRICS_ENABLED', true) && (target.problems.length === 0 || read.raw('METRICS_SOCKET_DIR') !== undefined)
        ? readMetricsSocketDir(read, target.port)
        : undefined,
    problems: read.problems,
  };
}

/** HOST, PORT and TLS as the api app reads them, each checked; problems instead of defaults. */
function readProbeTarget(env: Env): { host: string; port: number; tls: boolean; problems: string[] } {
  const read = new EnvReader(env);
  const host = read.string('HOST', '127.0.0.1');
  const port = read.integer('PORT', 8000, 1, 65535);
  if (net.isIP(host) === 0 && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(host)) {
    read.problems.push(`HOST must be an IP address or a host name (got "${host.slice(0, 100)}")`);
  }
  const cert = read.raw('TLS_CERT_FILE');
  const key = read.raw('TLS_KEY_FILE');
  if ((cert === undefined) !== (key === undefined)) {
    read.problems.push('TLS_CERT_FILE and TLS_KEY_FILE must be set together');
  }
  return { host, port, tls: cert !== undefined && key !== undefined, problems: read.problems };
}
