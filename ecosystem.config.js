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
    // Scheduled backups: PM2 starts a one-shot run at every BACKUP_CRON time (PM2's cron, in the
    // daemon's time zone; daily at 01:30 by default). A run exits when done and is never
    // restarted on exit. At `pm2 start` the app starts once too and, unless BACKUP_ON_START=1,
    // only logs that the schedule is registered (src/backup/job.ts).
    {
      name: 'backup',
      cwd: __dirname,
      script: path.join(__dirname, 'dist/src/backup/main.js'),
      exec_mode: 'fork',
      instances: 1,
      cron_restart: process.env.BACKUP_CRON || '30 1 * * *',
      autorestart: false,
      // Time to kill the dump and remove its partial file when stopped mid-run.
      kill_timeout: 5000,
      env: { NODE_ENV: 'development' },
      env_production: { NODE_ENV: 'production' },
    },
  ],
};
