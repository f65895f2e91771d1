// PM2 ecosystem of resilient-api. Loaded with require(), so it stays CommonJS whatever
// package.json says. Database settings come from the environment, never from this file.
'use strict';

const path = require('node:path');

module.exports = {
  apps: [
    {
      name: 'api',
      cwd: __dirname,
      script: path.join(__dirname, 'dist/src/main.js'),
      exec_mode: 'cluster',
      instances: 1,
      wait_ready: true,
      listen_timeout: 10000,
      kill_timeout: 12000,
      restart_delay: 3000,
      env: { NODE_ENV: 'development' },
      env_production: { NODE_ENV: 'production' },
    },
  ],
};
