// Entry of the `supervisor` app: a PM2 app itself (so PM2 restarts it), connected to the PM2
// daemon that runs it. It keeps supervisor.log, enforces the crash-loop limit, stops clean exits
// from being restarted, stops and reports bad configurations (exit 78), kills api workers whose
// event loop is stuck, reloads workers past the memory bound, alerts on crash loops and health
// transitions, and rotates the logs.
import path from 'node:path';
import { AlertSender } from '../platform/alerts';
import { pm2Home } from '../platform/config';
import { Lifecycle } from '../platform/lifecycle';
import { configureLogging, getLogger } from '../platform/logging/logger';
import { MetricsSocket } from '../platform/metrics/cluster';
import { loadSupervisorConfig, type SupervisorConfig } from './config';
import { readDaemonPolicy, reportDaemonPolicy } from '../platform/pm2/daemonPolicy';
import { HealthWatch } from './healthWatch';
import { reopenRenamedLogs, startLogRotation } from './logRotation';
import { SupervisorMetrics } from './metrics';
import * as pm2 from '../platform/pm2/pm2';
import { readExitSignal, Supervisor } from './supervisor';
import { WorkerChecks } from './workerChecks';

function main(): void {
  const config = loadSupervisorConfig();
  configureLogging({
    dir: config.logDir,
    level: 'info',
    maxBytes: config.logMaxBytes,
    backups: config.logBackups,
    // Under PM2 its lines go to stdout only, which PM2 writes to supervisor.log (ecosystem.config.js)
    // and shows in `pm2 logs`; run alone, it writes supervisor.log and prints the lines too.
    console: true,
    fileName: 'supervisor.log',
    rotation: 'self',
    layout: 'supervisor',
  });
  const log = getLogger('supervisor');
  for (const problem of config.problems) log.warn(`Ignoring a bad setting, using the default: ${problem}`);
  if (config.probeProblems.length > 0) {
    // Probing a guessed address could report on another service's health.
    log.error(`Not probing /health (${config.probeProblems.join('; ')}); still supervising exits, stuck workers and memory`);
  }
  const lifecycle = new Lifecycle(getLogger('supervisor'), 5000);
  lifecycle.install();
  run(config, lifecycle).catch((error: unknown) => {
    log.error('Supervisor failed to start; exiting for PM2 to restart it', error);
    void lifecycle.shutdown('start-up failed', 1);
  });
}

async function run(config: SupervisorConfig, lifecycle: Lifecycle): Promise<void> {
  const log = getLogger('supervisor');
  const alerts = new AlertSender(config.alertWebhookUrl, log, { timeoutMs: config.alertTimeoutMs });
  await pm2.connect();
  lifecycle.onShutdown('disconnect from PM2', async () => pm2.disconnect());
  reportDaemonPolicy(readDaemonPolicy(pm2Home()), log);
  const metrics = new SupervisorMetrics();
  const pm2Log = path.join(pm2Home(), 'pm2.log');
  const supervisor = new Supervisor(
    config,
    { stop: pm2.stop, exitSignal: (app, worker, runStartedAt) => readExitSignal(pm2Log, app, worker, runStartedAt) },
    log,
    alerts,
    metrics,
  );
  const bus = await pm2.launchBus();
  supervisor.attach(bus);
  const checks = new WorkerChecks(
    config,
    { list: pm2.list, sendData: pm2.sendData, reload: pm2.reload, kill: (pid) => process.kill(pid, 'SIGKILL') },
    supervisor,
    log,
    metrics,
  );
  checks.attach(bus);
  const running = await pm2.list();
  supervisor.describeRunning(running);
  await supervisor.reconcile(running);
  const watched = running.filter((proc) => proc.name !== undefined && proc.name !== '' && proc.name !== config.ownName);
  // @types/pm2 lacks pm2_env.autorestart; a one-shot job (the backup) has it false.
  const oneShot = watched.filter((proc) => (proc.pm2_env as { autorestart?: boolean } | undefined)?.autorestart === false);
  metrics.startCounting(new Set(watched.map((proc) => proc.name ?? '')), new Set(oneShot.map((proc) => proc.name ?? '')));
  if (config.metricsSocketDir !== undefined) {
    const socket = new MetricsSocket(config.metricsSocketDir, config.ownName, metrics.registry, log);
    if (await socket.listen()) lifecycle.onShutdown('close the metrics socket', () => socket.close());
  }
  log.info(
    `Supervisor started (pid ${process.pid}): crash loop = more than ${config.maxRestarts} restarts of runs ` +
      `under ${Math.round(config.stableWindowMs / 1000)} s; ` +
      (config.serviceUrl === undefined ? 'not probing /health; ' : `probing ${config.serviceUrl}/health every ${config.healthIntervalMs} ms; `) +
      `${config.apiName} workers killed after ${config.stuckWorkerTimeoutMs} ms without an answer; ` +
      (config.apiMaxMemoryBytes > 0 ? `reloaded past ${config.apiMaxMemoryBytes / 1024 / 1024} MB RSS; ` : 'no memory bound; ') +
      `alerts ${alerts.configured ? 'to the webhook' : 'off (no ALERT_WEBHOOK_URL)'}`,
  );
  checks.start();
  lifecycle.onShutdown('stop the worker checks', async () => checks.stop());

  if (config.serviceUrl !== undefined) watchHealth(config.serviceUrl, config, alerts, lifecycle);

  await reopenRenamedLogs(config.logDir, pm2.reloadLogs, log).catch((error: unknown) => log.error('Could not reload the logs', error));
  const stopRotation = startLogRotation(
    {
      logDir: config.logDir,
      maxBytes: config.logMaxBytes,
      backups: config.logBackups,
      checkMs: config.logRotateCheckMs,
      pm2Home: pm2Home(),
    },
    pm2.reloadLogs,
    log,
  );
  lifecycle.onShutdown('stop rotating the logs', async () => stopRotation());
  lifecycle.markReady();
}

/** PM2's listen_timeout for an api worker (ecosystem.config.js): how long a start may take. */
const API_START_UP_MS = 15_000;

/** Alerts when the service's /health turns unhealthy, and when it recovers. */
function watchHealth(serviceUrl: string, config: SupervisorConfig, alerts: AlertSender, lifecycle: Lifecycle): void {
  const log = getLogger('supervisor');
  // ecosystem.config.js gives an api worker 15 s (listen_timeout) to be ready.
  const health = new HealthWatch(serviceUrl, config.healthIntervalMs, config.healthFailuresBeforeAlert, API_START_UP_MS);
  health.on('unhealthy', (reason) => {
    log.error(`Service unhealthy: ${reason}`);
    void alerts.send({ level: 'ERROR', app: 'api', event: 'health_unhealthy', message: `Service unhealthy: ${reason}` });
  });
  health.on('recovered', () => {
    log.info('Service healthy again');
    void alerts.send({ level: 'INFO', app: 'api', event: 'health_recovered', message: 'Service healthy again' });
  });
  health.start();
  lifecycle.onShutdown('stop probing', async () => health.stop());
}

main();
