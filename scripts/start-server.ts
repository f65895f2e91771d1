// start-server (was start_server.bat): development in the foreground. The api runs from the
// TypeScript sources with hot reload on 127.0.0.1:8000 under PM2 with the supervisor; every
// line the apps print is streamed here; Ctrl+C stops and deletes the apps, and nothing restarts.
// It never touches another run: production (or anything else) under the same PM2 daemon, or a
// port in use, is refused with one line and nothing is stopped.
//
//   npm run dev          npx tsx scripts/start-server.ts
import * as pm2 from '../src/platform/pm2/pm2';
import { localUrl } from '../src/platform/util/healthProbe';
import {
  appNames,
  assertPortFree,
  configFor,
  describeApps,
  ECOSYSTEM_FILE,
  killDaemonIfIdle,
  OperatorError,
  prepareDaemonEnvironment,
  removeApps,
  ROOT,
  runningApps,
  runScript,
  step,
  waitForHealth,
} from '../src/platform/pm2/operator';

/** A second Ctrl+C within this time is the same press relayed by npm or tsx. */
const REPEAT_SIGNAL_GRACE_MS = 2000;

export async function startDevelopment(): Promise<void> {
  const config = configFor('development');
  const names = appNames();
  prepareDaemonEnvironment();
  await pm2.connect();
  try {
    // The apps share their names in every mode: removing "api" would remove production's api.
    const others = (await runningApps(names)).filter((app) => app.mode !== 'development' || app.cwd !== ROOT);
    if (others.length > 0) {
      const production = others.some((app) => app.mode === 'production');
      throw new OperatorError(
        `${production ? 'resilient-api runs in production' : 'Another run of resilient-api is'} under this PM2 daemon ` +
          `(${describeApps(others)}): development leaves it alone. Stop it first (npm stop), or give development ` +
          'a PM2 daemon of its own (PM2_HOME=~/.pm2-dev npm run dev).',
      );
    }
    // Left over from a development run of this checkout that did not end cleanly: start afresh.
    await removeApps(names);
    await assertPortFree(config.host, config.port);
  } catch (error) {
    // No daemon is left behind that this run started for nothing; one that runs apps is kept.
    await killDaemonIfIdle();
    pm2.disconnect();
    throw error;
  }

  const bus = await pm2.launchBus();
  for (const channel of ['log:out', 'log:err'] as const) {
    bus.on(channel, (packet) => {
      if (!names.includes(packet.process.name)) return;
      const text = String(packet.data ?? '').replace(/\n$/, '');
      const prefix = `${packet.process.name}${packet.process.name === 'api' ? ` ${packet.process.pm_id}` : ''} |`;
      for (const line of text.split('\n')) (channel === 'log:err' ? process.stderr : process.stdout).write(`${prefix} ${line}\n`);
    });
  }

  let stoppingSince: number | undefined;
  const stop = async (signal: string): Promise<void> => {
    if (stoppingSince !== undefined) {
      // npm and tsx relay the terminal's Ctrl+C too, so one press can arrive twice at once.
      if (Date.now() - stoppingSince < REPEAT_SIGNAL_GRACE_MS) return;
      console.error('Ctrl+C again: leaving without waiting for the apps to stop.');
      process.exit(1);
    }
    stoppingSince = Date.now();
    step(`${signal}: stopping and removing ${names.join(', ')}`);
    await removeApps(names).catch(() => undefined);
    await killDaemonIfIdle();
    pm2.disconnect();
    step('Stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('Ctrl+C'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  step(`Starting ${names.join(', ')} under PM2 (development, hot reload of src/)`);
  await pm2.startEcosystem(ECOSYSTEM_FILE, 'development');
  const url = localUrl(config.host, config.port, config.tls !== undefined);
  const health = await waitForHealth(url, 30_000);
  if (health.status === 200) console.log(`\n✔ resilient-api (development) is running at ${url}; Ctrl+C stops it\n`);
  else console.log(`\n! resilient-api is up at ${url} but /health answers ${health.status || 'nothing'}: ${health.body}\n`);
}

// Stays in the foreground until Ctrl+C.
if (require.main === module) runScript(startDevelopment, { exitWhenDone: false });
