// npm stop: stops and removes the project's PM2 apps (each drains first), and the PM2 daemon
// too when it runs nothing else.
import * as pm2 from '../src/supervisor/pm2';
import { appNames, runScript, step } from './lib/operator';

async function stopServer(): Promise<void> {
  const names = appNames();
  await pm2.connect();
  try {
    const ours = (await pm2.list()).filter((proc) => proc.name && names.includes(proc.name));
    if (ours.length === 0) {
      step('resilient-api is not running');
    } else {
      for (const name of new Set(ours.map((proc) => proc.name ?? ''))) {
        step(`Stopping ${name}`);
        await pm2.remove(name);
      }
    }
    if ((await pm2.list()).length === 0) await pm2.killDaemon().catch(() => undefined);
    step('Stopped');
  } finally {
    pm2.disconnect();
  }
}

runScript(async () => {
  await stopServer();
  // After killDaemon, PM2's client sometimes leaves a handle behind and the process idles
  // forever after "Stopped" (seen in 4 of 5 tries, before any change of this branch). The work
  // is done: do not wait for it. Unref'd, so a process that can end ends by itself first.
  setTimeout(() => process.exit(), 1000).unref();
});
