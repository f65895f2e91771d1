// PM2 ecosystem of resilient-api: every supervised process and its restart policy.
//
//   npx pm2 start ecosystem.config.js                    development: 127.0.0.1, hot reload, 1 worker
//   npx pm2 start ecosystem.config.js --env production   production: 0.0.0.0, cluster, 1 worker per core
//   DEPLOY_HOSTS=web1,web2 npx pm2 deploy ecosystem.config.js production setup|update|revert 1
//                                                        deploys to several hosts (docs/multi-host.md)
//
// PM2 loads this file with require(): it stays CommonJS (the .js extension and package.json's
// "type": "commonjs"; an ESM package would need ecosystem.config.cjs). Database and other
// settings are never written here: PM2 passes the starting shell's environment to every app,
// so `MYSQL_PORT=3307 npx pm2 start ecosystem.config.js --env production` reaches port 3307.
'use strict';

const { execFileSync } = require('node:child_process');
const path = require('node:path');

/** `--env production` on PM2's command line, else NODE_ENV, else development. */
function selectedEnv(argv, env) {
  const index = argv.indexOf('--env');
  if (index !== -1 && argv[index + 1]) return argv[index + 1];
  const inline = argv.find((arg) => arg.startsWith('--env='));
  if (inline) return inline.slice('--env='.length);
  return env.NODE_ENV || 'development';
}

/** API_INSTANCES as PM2 wants it: a number, or 'max' for one worker per core. */
function instances(value, fallback) {
  if (!value) return fallback;
  return /^\d+$/.test(value) ? Number(value) : value;
}

const mode = selectedEnv(process.argv, process.env);
const production = mode === 'production';
/** Only development runs the sources; production (and test) run the compiled dist/. */
const fromSources = mode === 'development';
const root = __dirname;
const restartDelay = Number(process.env.RESTART_DELAY_MS || 3000);
const shutdownTimeout = Number(process.env.SHUTDOWN_TIMEOUT_MS || 10000);

/** LOG_DIR as the apps resolve it (relative to the project, their cwd). */
const logDir = path.resolve(root, process.env.LOG_DIR || 'logs');

/**
 * PM2's log files of an app are the project's own file: the apps write only to stdout under
 * PM2 (src/platform/logging/pm2LogOutput.ts), so each line is written once, `pm2 logs` shows it live and
 * `pm2 logs --nostream` prints the file's tail. Out and error go to the same file (PM2 prints a
 * file named twice once); the lines carry their own timestamps; one file for all workers.
 * The supervisor rotates these files (docs/operations.md, "Rotation").
 */
const logFiles = (file) => ({
  out_file: path.join(logDir, file),
  error_file: path.join(logDir, file),
  merge_logs: true,
  time: false,
});

/** Development runs the TypeScript sources through tsx; otherwise the compiled dist/. */
const entry = (compiled, source) =>
  fromSources
    ? { script: path.join(root, 'scripts', 'dev-entry.js'), args: [source] }
    : { script: path.join(root, 'dist', compiled) };

/** What PM2 itself puts into a process's environment: never handed on to the apps from here. */
const PM2_OWN_VARIABLES = new Set(['pm2_env', 'pm_id', 'NODE_APP_INSTANCE', 'PM2_JSON_PROCESSING', 'PM2_PROGRAMMATIC']);

/**
 * The environment this file is loaded with: the shell of `pm2 start|reload ecosystem.config.js`
 * or of `npm start`. `pm2 start` hands it to the apps anyway, but a reload from this file
 * replaces each app's env with the env_<mode> below and keeps the old values (PM2 7, even with
 * --update-env): listing it here is what makes `RATE_LIMIT_PER_MINUTE=5 npx pm2 reload
 * ecosystem.config.js --env production` (and a re-run of `npm start`) reach the workers. A
 * variable removed from the shell keeps its old value, as PM2 merges; set it empty (`NAME=`)
 * to go back to the default.
 */
const shellEnvironment = Object.fromEntries(Object.entries(process.env).filter(([name]) => !PM2_OWN_VARIABLES.has(name)));

/**
 * What every app shares. No @pm2/io in any process: it is only for PM2's paid dashboard, and
 * loading it costs about 12 MB per process; metrics come from /metrics. Only the mode is set
 * per environment: HOST, PORT, MYSQL_* and the rest come from the environment (config.ts).
 */
const common = (name, compiled, source) => ({
  name,
  cwd: root,
  ...entry(compiled, source),
  pmx: false,
  watch: false,
  env: { ...shellEnvironment, NODE_ENV: 'development' },
  env_production: { ...shellEnvironment, NODE_ENV: 'production' },
});

/**
 * Restart policy (docs/operations.md, "Supervision"): every exit is restarted after 3 s; the supervisor
 * stops a deliberate clean exit during that delay and stops the app after a crash loop.
 * PM2's own limiter cannot express that policy, so it is set out of the way.
 */
const restartAlways = {
  autorestart: true,
  restart_delay: restartDelay,
  max_restarts: 1000,
};

const api = {
  ...common('api', 'src/api/main.js', 'src/api/main.ts'),
  ...restartAlways,
  // A bounded young generation: under load V8 otherwise grows it to 3 × 16 MB per worker, which
  // alone would take a worker past its memory budget (bench: memory at steady load). 4 MB, not 2:
  // at 2 MB scavenges took ~16% of a GET /api/me worker's busy time and ~9.5% of /health's, at
  // 4 MB ~8% each (CPU profiles, docs/benchmarks.md), for at most 3 × 2 MB more per worker.
  // 8 MB gained little more on /api/me and three times that memory.
  node_args: ['--max-semi-space-size=4'],
  exec_mode: 'cluster',
  instances: instances(process.env.API_INSTANCES, production ? 'max' : 1),
  // Exit 78 is a bad configuration, which no restart heals: PM2 never restarts it, even with no
  // supervisor running (PM2 then shows it `waiting restart`, though no restart is pending; the
  // supervisor stops the app so that it shows `stopped`, and reports the bad variables).
  stop_exit_codes: [78],
  // Online only once listening and migrated (main.ts sends 'ready'); a reload waits for it.
  wait_ready: true,
  listen_timeout: 15000,
  // SIGINT first; SIGKILL only after the drain bound has had its time.
  kill_timeout: shutdownTimeout + 2000,
  min_uptime: 5 * 60 * 1000,
  // Hot reload in development: a restart (PM2 watch never reloads), of src/ only.
  watch: fromSources ? [path.join(root, 'src')] : false,
  watch_delay: 500,
  ignore_watch: ['node_modules', 'logs', 'dist', '\\.git', '\\.test\\.ts$'],
  ...logFiles('backend.log'),
};

const supervisor = {
  ...common('supervisor', 'src/supervisor/main.js', 'src/supervisor/main.ts'),
  ...restartAlways,
  exec_mode: 'fork',
  instances: 1,
  kill_timeout: 6000,
  ...logFiles('supervisor.log'),
};

// Scheduled backups: PM2 starts a one-shot run at every BACKUP_CRON time (PM2's cron, in the
// daemon's time zone; daily at 01:30 by default). A run exits when done and is never restarted
// on exit. At `pm2 start` the app starts once too and, unless BACKUP_ON_START=1, only logs that
// the schedule is registered (src/backup/job.ts).
const backup = {
  ...common('backup', 'src/backup/main.js', 'src/backup/main.ts'),
  exec_mode: 'fork',
  instances: 1,
  cron_restart: process.env.BACKUP_CRON || '30 1 * * *',
  autorestart: false,
  // Time to kill the dump and remove its partial file when stopped mid-run.
  kill_timeout: 5000,
  ...logFiles('backend.log'),
};

/**
 * What `pm2 deploy` runs in the new release's folder on each host, one host after the other:
 * first the host's own settings (MYSQL_*, JWT_SECRET_FILE, HOST_ID, TRUSTED_PROXIES, BACKUP_CRON,
 * LOG_DIR…) from `KEY=value` lines in <deploy path>/shared/env, beside the releases; then install,
 * build, migrate (the first host applies what is pending under the migration lock, with its
 * backup before migrating; the next hosts find nothing to do), then reload the apps (starting
 * them on a host where they do not run yet). The settings come first because the reload runs
 * from the deploy's bare ssh shell, where PM2 recomputes this file's app options (the backup
 * schedule, the log folder, the timeouts) from the environment: without them a deploy would put
 * a host's settings back to their defaults. pm2-deploy reads this with a pattern that stops at a
 * double quote: it must never contain one.
 */
function postDeploy(deployPath) {
  const settings = path.posix.join(deployPath, 'shared', 'env');
  return (
    `set -a && if [ -f ${settings} ]; then . ${settings}; fi && set +a && ` +
    'npm ci && npm run build && npm run migrate && npx pm2 reload ecosystem.config.js --env production'
  );
}

/**
 * Settings never passed through DEPLOY_ENV: pm2-deploy writes each hook's command line, variables
 * included, to /tmp/pm2-deploy-<user>.log on the deploying machine and runs it over ssh (visible
 * in `ps` on each host). Secrets stay on each host, in its settings file (postDeploy).
 * Any name that may hold a credential is refused (a webhook URL carries its token); a *_FILE
 * setting names a file and may pass.
 */
const SECRET_SETTING = /SECRET|PASSWORD|TOKEN|KEY|WEBHOOK|_URL$/;

/** The checkout's origin, for DEPLOY_REPO's default; undefined when there is none. */
function originUrl() {
  try {
    const url = execFileSync('git', ['-C', root, 'config', '--get', 'remote.origin.url'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2000,
    });
    return url.toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * NODE_ENV=production and the variables DEPLOY_ENV names (comma-separated), with their values in
 * this shell: pm2-deploy exports them before the post-deploy commands, unquoted, so a value may
 * hold no space or quote.
 */
function deployEnvironment(env) {
  const names = (env.DEPLOY_ENV || '').split(',').map((name) => name.trim()).filter((name) => name !== '');
  const passed = { NODE_ENV: 'production' };
  for (const name of names) {
    if (SECRET_SETTING.test(name) && !name.endsWith('_FILE')) {
      throw new Error(`DEPLOY_ENV must not name ${name}: pm2 deploy logs its commands; give each host the secret in a file (docs/multi-host.md)`);
    }
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`DEPLOY_ENV: "${name}" is not a variable name in capitals`);
    const value = env[name] ?? '';
    if (!/^[A-Za-z0-9_.,:/@=+%-]*$/.test(value)) {
      throw new Error(`DEPLOY_ENV: the value of ${name} may hold only letters, digits and _ . , : / @ = + % - (pm2 deploy cannot quote it)`);
    }
    passed[name] = value;
  }
  return passed;
}

/**
 * The `deploy` section of `pm2 deploy ecosystem.config.js production setup|update|revert [n]`
 * (docs/multi-host.md), from DEPLOY_HOSTS (comma-separated, each `host` or `user@host`),
 * DEPLOY_USER (for hosts named without one), DEPLOY_REPO (default: this checkout's origin),
 * DEPLOY_REF (default origin/main), DEPLOY_PATH (default /srv/resilient-api) and DEPLOY_ENV.
 * Without DEPLOY_HOSTS there is none: starting and reloading the apps never need it. The user is
 * written into each host (pm2-deploy has one user per environment, and would prefix it to a host
 * that names its own).
 */
function deploySection(env) {
  const hosts = (env.DEPLOY_HOSTS || '').split(',').map((host) => host.trim()).filter((host) => host !== '');
  if (hosts.length === 0) return undefined;
  for (const host of hosts) {
    if (!/^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+$/.test(host)) throw new Error(`DEPLOY_HOSTS: "${host}" is not a host name or user@host`);
  }
  const user = (env.DEPLOY_USER || '').trim();
  const repo = (env.DEPLOY_REPO || '').trim() || originUrl();
  if (!repo) throw new Error('DEPLOY_REPO is required: this checkout has no origin to deploy from');
  const deployPath = (env.DEPLOY_PATH || '').trim() || '/srv/resilient-api';
  if (!/^\/[A-Za-z0-9._\/-]*$/.test(deployPath)) throw new Error(`DEPLOY_PATH: "${deployPath}" is not an absolute path of letters, digits and . _ / -`);
  return {
    production: {
      host: hosts.map((host) => (user === '' || host.includes('@') ? host : `${user}@${host}`)),
      repo,
      ref: (env.DEPLOY_REF || '').trim() || 'origin/main',
      path: deployPath,
      'post-deploy': postDeploy(deployPath),
      env: deployEnvironment(env),
    },
  };
}

const deploy = deploySection(process.env);

module.exports = deploy ? { apps: [api, supervisor, backup], deploy } : { apps: [api, supervisor, backup] };
