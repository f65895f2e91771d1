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
  // PM2's client races the daemon it has just killed: when the daemon's socket closes before the
  // client marks itself closing, pm2-axon arms a reconnect timer that re-arms itself forever and
  // this process never exits (about half the runs here, with or without this branch's changes).
  // All is done by now; an unref'd timer ends the process only if something like that holds it.
  setTimeout(() => process.exit(), 500).unref();
});
