// The supervisor reads only what it needs, and never refuses to start over a bad value: it is
// the one process that must stay up to report on the others. Problems are reported, defaults used.
import { EnvReader, type Env, readAlertWebhookUrl, readLogFiles, readMetricsSocketDir } from '../config';
import { localUrl } from '../util/healthProbe';

export interface SupervisorConfig {
  readonly logDir: string;
  readonly logMaxBytes: number;
  readonly logBackups: number;
  /** How often backend.log's size is checked for rotation. */
  readonly logRotateCheckMs: number;
  readonly alertWebhookUrl: string | undefined;
  /** Bound on one webhook attempt. */
  readonly alertTimeoutMs: number;
  /** The api app on this host, as probed (its /health). */
  readonly serviceUrl: string;
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
  const host = read.string('HOST', '127.0.0.1');
  const port = read.integer('PORT', 8000, 1, 65535);
  const tls = read.raw('TLS_CERT_FILE') !== undefined && read.raw('TLS_KEY_FILE') !== undefined;
  const ownName = read.string('name', 'supervisor');
  const logFiles = readLogFiles(read);
  return {
    logDir: logFiles.dir,
    logMaxBytes: logFiles.maxBytes,
    logBackups: logFiles.backups,
    logRotateCheckMs: read.integer('LOG_ROTATE_CHECK_MS', 10_000, 100, 3_600_000),
    alertWebhookUrl: readAlertWebhookUrl(read),
    alertTimeoutMs: read.integer('ALERT_TIMEOUT_MS', 5000, 100, 60_000),
    serviceUrl: localUrl(host, port, tls),
    healthIntervalMs: read.integer('HEALTH_CHECK_INTERVAL_MS', 5000, 100, 3_600_000),
    healthFailuresBeforeAlert: read.integer('HEALTH_ALERT_AFTER', 2, 1, 100),
    maxRestarts: read.integer('CRASH_LOOP_MAX_RESTARTS', 10, 1, 1000),
    stableWindowMs: read.integer('CRASH_LOOP_WINDOW_MS', 5 * 60 * 1000, 1000, 24 * 3600 * 1000),
    ownName,
    metricsSocketDir: read.flag('METRICS_ENABLED', true) ? readMetricsSocketDir(read, port) : undefined,
    problems: read.problems,
  };
}
