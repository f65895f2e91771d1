// npm stop: stops and removes the project's PM2 apps (each drains first), and the PM2 daemon
// too when it runs nothing else.
import * as pm2 from '../src/platform/pm2/pm2';
import { appNames, killDaemonIfIdle, removeApps, runScript, step } from '../src/platform/pm2/operator';

async function stopServer(): Promise<void> {
  const names = appNames();
  await pm2.connect();
  try {
    const removed = await removeApps(names, (name) => step(`Stopping ${name}`));
    if (removed === 0) step('resilient-api is not running');
    await killDaemonIfIdle();
    step('Stopped');
  } finally {
    pm2.disconnect();
  }
}

// runScript exits once stopServer is done: PM2's client may keep a handle after killDaemon.
runScript(stopServer);
