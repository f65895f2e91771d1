// `pm2 deploy ecosystem.config.js production setup|update|revert`: the deploy section the
// ecosystem builds from DEPLOY_*, and a real deploy through PM2's own deploy script against a
// local bare repository, with `ssh` a stand-in on PATH that runs the remote command here. The
// post-deploy commands are replaced in this test only (a wrapper ecosystem): the real ones run
// `npm ci` and a build, minutes and a registry away; what matters here is that they run, where,
// and with which environment.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { PM2_BIN } from './helpers/pm2';
import { isAlive } from '../src/platform/util/processAlive';
import { ROOT, tempDir } from './helpers/service';

const run = promisify(execFile);
const ECOSYSTEM = path.join(ROOT, 'ecosystem.config.js');

/** The ecosystem as PM2 loads it, in a fresh process with exactly `env` (DEPLOY_* included). */
function loadEcosystem(env: Record<string, string>): { deploy?: Record<string, Record<string, unknown>>; error?: string } {
  const script =
    `try { const e = require(${JSON.stringify(ECOSYSTEM)}); console.log(JSON.stringify({ deploy: e.deploy })); }` +
    ' catch (error) { console.log(JSON.stringify({ error: error.message })); }';
  const out = execFileSync(process.execPath, ['-e', script], { env: { PATH: process.env['PATH'] ?? '', ...env } });
  return JSON.parse(out.toString()) as ReturnType<typeof loadEcosystem>;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.com', ...args], { cwd }).toString().trim();
}

test('the deploy section PM2 expects, from DEPLOY_*', (t) => {
  t.is(loadEcosystem({}).deploy, undefined, 'no DEPLOY_HOSTS: no deploy section, starting and reloading need none');

  const loaded = loadEcosystem({
    DEPLOY_HOSTS: 'web1.example.net, ops@web2.example.net',
    DEPLOY_USER: 'deploy',
    DEPLOY_REPO: 'git@example.net:team/resilient-api.git',
    DEPLOY_ENV: 'MYSQL_HOST,TRUSTED_PROXIES',
    MYSQL_HOST: 'db.internal',
    TRUSTED_PROXIES: '10.0.0.5,10.0.0.6',
  });
  t.deepEqual(loaded.deploy, {
    production: {
      host: ['deploy@web1.example.net', 'ops@web2.example.net'],
      repo: 'git@example.net:team/resilient-api.git',
      ref: 'origin/main',
      path: '/srv/resilient-api',
      'post-deploy':
        'set -a && if [ -f /srv/resilient-api/shared/env ]; then . /srv/resilient-api/shared/env; fi && set +a && ' +
        'npm ci && npm run build && npm run migrate && npx pm2 reload ecosystem.config.js --env production',
      env: { NODE_ENV: 'production', MYSQL_HOST: 'db.internal', TRUSTED_PROXIES: '10.0.0.5,10.0.0.6' },
    },
  });
  t.false(String(loaded.deploy?.['production']?.['post-deploy']).includes('"'), 'pm2-deploy cannot read a double quote');

  const custom = loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r.git', DEPLOY_REF: 'origin/release', DEPLOY_PATH: '/opt/ra' });
  t.like(custom.deploy?.['production'], { host: ['h'], ref: 'origin/release', path: '/opt/ra' });

  // DEPLOY_REPO defaults to the checkout's origin, when it has one.
  let origin = '';
  try {
    origin = execFileSync('git', ['-C', ROOT, 'config', '--get', 'remote.origin.url']).toString().trim();
  } catch {
    origin = '';
  }
  const fromOrigin = loadEcosystem({ DEPLOY_HOSTS: 'h' });
  if (origin === '') t.regex(fromOrigin.error ?? '', /DEPLOY_REPO is required: this checkout has no origin/);
  else t.is(fromOrigin.deploy?.['production']?.['repo'], origin);

  t.regex(loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r', DEPLOY_ENV: 'JWT_SECRET' }).error ?? '', /DEPLOY_ENV must not name JWT_SECRET/);
  for (const name of ['MYSQL_PASSWORD', 'MYSQL_URL', 'METRICS_TOKEN', 'ALERT_WEBHOOK_URL']) {
    t.regex(loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r', DEPLOY_ENV: name }).error ?? '', new RegExp(`DEPLOY_ENV must not name ${name}`));
  }
  // The path goes into the hook's shell command: nothing a shell would read as more than a path.
  t.regex(loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r', DEPLOY_PATH: '/srv/a;rm -rf ~' }).error ?? '', /DEPLOY_PATH: .* is not an absolute path/);
  // A file's path is no secret.
  t.like(loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r', DEPLOY_ENV: 'JWT_SECRET_FILE', JWT_SECRET_FILE: '/etc/ra/jwt' }).deploy?.['production']?.['env'], {
    JWT_SECRET_FILE: '/etc/ra/jwt',
  });
  t.regex(loadEcosystem({ DEPLOY_HOSTS: 'h', DEPLOY_REPO: '/r', DEPLOY_ENV: 'LOG_DIR', LOG_DIR: 'a b' }).error ?? '', /value of LOG_DIR/);
  t.regex(loadEcosystem({ DEPLOY_HOSTS: 'h;rm', DEPLOY_REPO: '/r' }).error ?? '', /DEPLOY_HOSTS: "h;rm" is not a host name/);
});

test('pm2 deploy setup, update and revert against a local repository, over a stand-in ssh', async (t) => {
  const dir = tempDir('ra-deploy-');
  // The project's repository: a bare one (the "origin"), and the operator's clone of it.
  const seed = path.join(dir, 'seed');
  mkdirSync(seed);
  git(seed, 'init', '-q', '-b', 'main');
  writeFileSync(path.join(seed, 'VERSION'), '1\n');
  git(seed, 'add', 'VERSION');
  git(seed, 'commit', '-q', '-m', 'first');
  const bare = path.join(dir, 'repo.git');
  git(dir, 'clone', '-q', '--bare', seed, bare);
  const work = path.join(dir, 'work');
  git(dir, 'clone', '-q', bare, work);

  // `ssh [options] host command…`: runs the command here, as the host's shell would, and notes the host.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const sshLog = path.join(dir, 'ssh-hosts');
  writeFileSync(
    path.join(bin, 'ssh'),
    [
      '#!/usr/bin/env bash',
      'while [ $# -gt 0 ]; do case "$1" in -p|-i|-o) shift 2 ;; -*) shift ;; *) break ;; esac; done',
      `echo "$1" >> ${JSON.stringify(sshLog)}`,
      'shift',
      'exec bash -c "$*"',
    ].join('\n'),
    { mode: 0o755 },
  );

  // The real ecosystem's deploy section, its post-deploy replaced (see the top of this file).
  const wrapper = path.join(dir, 'eco', 'ecosystem.config.js');
  mkdirSync(path.dirname(wrapper));
  writeFileSync(
    wrapper,
    `const ecosystem = require(${JSON.stringify(ECOSYSTEM)});\n` +
      // The real hook's first part (the host's settings file), then what the test reads back.
      "const loadSettings = ecosystem.deploy.production['post-deploy'].split(' && npm ci')[0];\n" +
      "ecosystem.deploy.production['post-deploy'] = loadSettings + ' && cat VERSION > ' + ecosystem.deploy.production.path + '/shared/deployed && printenv NODE_ENV MYSQL_HOST HOST_ID >> ' + ecosystem.deploy.production.path + '/shared/deployed';\n" +
      'module.exports = ecosystem;\n',
  );
  const target = path.join(dir, 'srv');
  const pm2Home = path.join(dir, 'pm2home');
  const env = {
    PATH: `${bin}:${process.env['PATH'] ?? ''}`,
    HOME: process.env['HOME'] ?? '/root',
    PM2_HOME: pm2Home,
    DEPLOY_HOSTS: 'web1.test',
    DEPLOY_REPO: bare,
    DEPLOY_PATH: target,
    DEPLOY_ENV: 'MYSQL_HOST',
    MYSQL_HOST: 'db.internal',
  };
  const deploy = async (...args: string[]): Promise<string> => {
    const { stdout, stderr } = await run(process.execPath, [PM2_BIN, 'deploy', wrapper, 'production', ...args], {
      cwd: work,
      env,
      timeout: 60_000,
    });
    return `${stdout}${stderr}`;
  };
  const deployed = (): string => readFileSync(path.join(target, 'shared', 'deployed'), 'utf8');

  try {
    t.regex(await deploy('setup'), /setup complete/);
    t.is(readlinkSync(path.join(target, 'current')), path.join(target, 'source'));
    t.true(existsSync(path.join(target, 'source', 'VERSION')));

    // The host's own settings, kept beside the releases.
    writeFileSync(path.join(target, 'shared', 'env'), 'HOST_ID=web-1\n');
    t.regex(await deploy('update'), /successfully deployed origin\/main/);
    t.is(deployed(), '1\nproduction\ndb.internal\nweb-1\n', 'post-deploy ran in the release with the deploy environment and the host settings');

    writeFileSync(path.join(work, 'VERSION'), '2\n');
    git(work, 'commit', '-q', '-am', 'second');
    git(work, 'push', '-q', 'origin', 'main');
    await deploy('update');
    t.is(deployed(), '2\nproduction\ndb.internal\nweb-1\n');
    t.is(readFileSync(path.join(target, '.deploys'), 'utf8').trim().split('\n').length, 2);

    await deploy('revert', '1');
    t.is(deployed(), '1\nproduction\ndb.internal\nweb-1\n', 'revert 1 goes back to the previous release');
    t.deepEqual([...new Set(readFileSync(sshLog, 'utf8').trim().split('\n'))], ['web1.test'], 'every remote step went over ssh');
  } finally {
    // The pm2 command starts a daemon in this PM2_HOME (deploying needs none): it goes with the test.
    await run(process.execPath, [PM2_BIN, 'kill'], { env, timeout: 30_000 }).catch(() => undefined);
    const pidFile = path.join(pm2Home, 'pm2.pid');
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
});
