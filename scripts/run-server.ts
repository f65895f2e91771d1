// run-server [--production] (was run_server.ps1 [-Production]): development in the foreground,
// or with --production the production start.
import { startProduction } from './start-server-production';
import { startDevelopment } from './start-server';
import { runScript } from '../src/platform/pm2/operator';

const production = process.argv.slice(2).some((arg) => /^-{1,2}production$/i.test(arg));
runScript(production ? startProduction : startDevelopment, { exitWhenDone: production });
