// start-server-production (was start_server_production.bat): build, migrate, start the
// production ecosystem under the PM2 daemon (cluster, 0.0.0.0:8000), wait for /health, print the
// URL, return. Run again while it runs: a zero-downtime reload with the current environment
// (the ecosystem file hands the environment to every app, so a changed variable is applied).
// The JWT secret is not its business: the service finds it itself (src/platform/config.ts).
//
//   npm start            npx tsx scripts/start-server-production.ts
import { databaseTarget, pm2Home } from '../src/platform/config';
import { daemonPolicyWarning, readDaemonPolicy } from '../src/platform/pm2/daemonPolicy';
import { migrate, unreachableCause } from '../src/platform/db/migrate';
import { migrationOptions } from '../src/platform/backups/migrationOptions';
import { configureLoggingFor, getLogger } from '../src/platform/logging/logger';
import * as pm2 from '../src/platform/pm2/pm2';
import { localUrl } from '../src/platform/util/healthProbe';
import {
  appNames,
  assertPortFree,
  build,
  configFor,
  describeApps,
  ECOSYSTEM_FILE,
  OperatorError,
  prepareDaemonEnvironment,
  runningApps,
  runScript,
  step,
  waitForHealth,
} from '../src/platform/pm2/operator';
import { messageOf } from '../src/platform/util/errors';

const HEALTH_WAIT_MS = 60_000;

export async function startProduction(): Promise<void> {
  build();
  const config = configFor('production');
  configureLoggingFor(config, 'one-shot');

  const target = databaseTarget(config.db);
  step(`Applying migrations to ${target}`);
  try {
    // With a backup first when something is pending (production), as `npm run migrate` does.
    const applied = await migrate(config.db, getLogger('migrations'), migrationOptions(config, getLogger('backup')));
    step(applied.length > 0 ? `Applied ${applied.join(', ')}` : 'Schema is up to date');
  } catch (error) {
    const reason = messageOf(error);
    if (unreachableCause(error) !== undefined) {
      throw new OperatorError(`Database unreachable for migration at ${target}: ${reason}. Is it running? Check MYSQL_* settings.`);
    }
    throw new OperatorError(`${reason}. Nothing was started.`);
  }

  prepareDaemonEnvironment();
  await pm2.connect();
  // A daemon started earlier without the policy (a bare `pm2 start`, a boot unit without it).
  const daemonWarning = daemonPolicyWarning(readDaemonPolicy(pm2Home()));
  if (daemonWarning !== undefined) console.log(`! ${daemonWarning}`);
  try {
    const development = (await runningApps(appNames())).filter((app) => app.mode === 'development');
    if (development.length > 0) {
      throw new OperatorError(
        `A development run uses this PM2 daemon (${describeApps(development)}): stop it (Ctrl+C where npm run dev runs) ` +
          'before starting production. Nothing was started.',
      );
    }
    const running = (await pm2.list()).some((proc) => proc.name === 'api' && proc.pm2_env?.status === 'online');
    if (running) step('resilient-api is already running: reloading it without downtime');
    else await assertPortFree(config.host, config.port);
    step(`Starting ${appNames().join(', ')} under PM2 (production)`);
    await pm2.reloadEcosystem(ECOSYSTEM_FILE, 'production');

    const url = localUrl(config.host, config.port, config.tls !== undefined);
    step(`Waiting for ${url}/health`);
    const health = await waitForHealth(url, HEALTH_WAIT_MS);
    if (health.status !== 200) {
      throw new OperatorError(
        `The service started but ${url}/health answers ${health.status || 'nothing'}${health.body ? `: ${health.body}` : ''}. ` +
          'See logs/backend.log or `npx pm2 logs`.',
      );
    }
    const workers = (await pm2.list()).filter((proc) => proc.name === 'api').length;
    console.log(`\n✔ resilient-api is running at ${url} (listening on ${config.host}:${config.port}, ${workers} worker(s))`);
    console.log('  logs: npx pm2 logs   monitor: npx pm2 monit   reload: npx pm2 reload api   stop: npm stop');
    console.log('  after a reboot: once `npx pm2 startup` is set up, `npm run save` records what runs now');
  } finally {
    pm2.disconnect();
  }
}

if (require.main === module) runScript(startProduction);
