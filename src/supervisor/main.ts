// Entry of the `supervisor` app: a PM2 app itself (so PM2 restarts it), connected to the PM2
// daemon that runs it. It keeps supervisor.log, enforces the crash-loop limit, stops clean exits
// from being restarted, alerts on crash loops and health transitions, and rotates backend.log.
import path from 'node:path';
import { AlertSender } from '../alerts';
import { Lifecycle } from '../lifecycle';
import { configureLogging, getLogger } from '../logger';
import { MetricsSocket } from '../metrics/cluster';
import { loadSupervisorConfig, type SupervisorConfig } from './config';
import { HealthWatch } from './healthWatch';
import { rotateIfLarge } from './logFiles';
import { createSupervisorRegistry, startCounting } from './metrics';
import * as pm2 from './pm2';
import { Supervisor } from './supervisor';

function main(): void {
  const config = loadSupervisorConfig();
  configureLogging({
    dir: config.logDir,
    level: 'info',
    maxBytes: config.logMaxBytes,
    backups: config.logBackups,
    // stdout too: the start scripts and `pm2 logs` show what the supervisor says.
    console: true,
    fileName: 'supervisor.log',
    rotation: 'self',
    layout: 'supervisor',
  });
  const log = getLogger('supervisor');
  for (const problem of config.problems) log.warn(`Ignoring a bad setting, using the default: ${problem}`);
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
  const supervisor = new Supervisor(config, { stop: pm2.stop }, log, alerts);
  supervisor.attach(await pm2.launchBus());
  const running = await pm2.list();
  supervisor.describeRunning(running);
  startCounting(new Set(running.map((proc) => proc.name ?? '').filter((name) => name !== config.ownName && name !== '')));
  if (config.metricsSocketDir !== undefined) {
    const socket = new MetricsSocket(config.metricsSocketDir, config.ownName, createSupervisorRegistry(), log);
    if (await socket.listen()) lifecycle.onShutdown('close the metrics socket', () => socket.close());
  }
  log.info(
    `Supervisor started (pid ${process.pid}): crash loop = more than ${config.maxRestarts} restarts of runs ` +
      `under ${Math.round(config.stableWindowMs / 1000)} s; probing ${config.serviceUrl}/health every ${config.healthIntervalMs} ms; ` +
      `alerts ${alerts.configured ? 'to the webhook' : 'off (no ALERT_WEBHOOK_URL)'}`,
  );

  const health = new HealthWatch(config.serviceUrl, config.healthIntervalMs, config.healthFailuresBeforeAlert);
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

  const backendLog = path.join(config.logDir, 'backend.log');
  const rotation = setInterval(() => {
    rotateIfLarge(backendLog, config.logMaxBytes, config.logBackups).then(
      (rotated) => rotated && log.info(`Rotated backend.log (over ${config.logMaxBytes} bytes)`),
      (error: unknown) => log.error('Could not rotate backend.log', error),
    );
  }, config.logRotateCheckMs);
  rotation.unref();
  lifecycle.markReady();
}

main();
