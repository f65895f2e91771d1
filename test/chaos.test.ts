// Chaos under a real PM2 daemon (started, as by npm start, with NODE_CLUSTER_SCHED_POLICY=none):
// registrations and logins while workers are SIGKILLed, the database is stopped and the api app
// is reloaded lose no acknowledged write and leave no request unanswered; and a worker killed
// again and again under a stream of new connections strands none of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { chaosTargetsMet, describeChaos, HUNG_AFTER_MS, runChaos } from '../bench/lib/chaos';
import { daemonPolicyWarning, readDaemonPolicy } from '../src/platform/pm2/daemonPolicy';
import { createPrivateMariaDb, type PrivateMariaDb } from './helpers/mariadb';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

const WORKERS = 2;
let mariadb: PrivateMariaDb;
let sandbox: Pm2Sandbox;

test.before(async () => {
  mariadb = await createPrivateMariaDb('resilient_api');
  sandbox = await createPm2Sandbox({
    ...mariadb.env,
    API_INSTANCES: String(WORKERS),
    // The load goes past every per-client limit from one loopback address.
    RATE_LIMIT_PER_MINUTE: '0',
    LOGIN_MAX_FAILURES_PER_IP: '1000000',
    // Killed workers come back sooner, so the run stays short.
    RESTART_DELAY_MS: '1000',
  });
  await sandbox.startEcosystem('production', WORKERS);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await mariadb?.destroy();
});

test.serial('the daemon hands out no connection itself, and the supervisor does not warn', (t) => {
  const policy = readDaemonPolicy(sandbox.home);
  t.is(policy.kind, 'none');
  t.notRegex(sandbox.supervisorLog(), /round-robin/);
});

test.serial('chaos: workers SIGKILLed, the database stopped, a reload: no acknowledged write lost, nothing hung, no 500', async (t) => {
  const report = await runChaos({
    service: sandbox,
    mariadb,
    database: 'resilient_api',
    workers: WORKERS,
    clients: 12,
    seconds: 24,
    events: [
      { atMs: 3000, action: { kind: 'kill-worker' } },
      { atMs: 6000, action: { kind: 'stop-database', forMs: 2000 } },
      { atMs: 12_000, action: { kind: 'kill-worker' } },
      { atMs: 15_000, action: { kind: 'reload' } },
      { atMs: 21_000, action: { kind: 'kill-worker' } },
    ],
  });
  t.log(report.log.join('\n'));
  t.log(describeChaos(report));
  t.true(report.acknowledged >= 20, `only ${report.acknowledged} registrations acknowledged`);
  t.is(report.found, report.acknowledged, 'every acknowledged registration is in the database');
  t.is(report.duplicates, 0);
  t.is(report.loginsRefused, 0, 'every acknowledged user can log in');
  t.is(report.hung, 0, `requests without an answer within ${HUNG_AFTER_MS} ms`);
  t.is(report.byStatus['500'] ?? 0, 0);
  t.true((report.byStatus['503'] ?? 0) > 0, 'the database outage was answered 503');
  t.true(report.counterExact, 'total_users matches the rows');
  t.true(report.healthyAtEnd);
  t.true(chaosTargetsMet(report));
});

/** GETs on fresh connections back to back from `clients` loops until `until` resolves; every outcome's time. */
async function connectionStream(url: string, clients: number, until: Promise<void>): Promise<{ answered: number; reset: number; slowest: number; unanswered: number }> {
  let running = true;
  void until.then(() => (running = false));
  const result = { answered: 0, reset: 0, slowest: 0, unanswered: 0 };
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const started = Date.now();
      const req = http.get(`${url}/api/me`, { agent: false, timeout: 2 * HUNG_AFTER_MS }, (res) => {
        res.resume();
        res.on('end', () => {
          const ms = Date.now() - started;
          result.slowest = Math.max(result.slowest, ms);
          if (ms >= HUNG_AFTER_MS) result.unanswered++;
          else result.answered++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer')));
      req.on('error', () => {
        const ms = Date.now() - started;
        result.slowest = Math.max(result.slowest, ms);
        if (ms >= HUNG_AFTER_MS) result.unanswered++;
        else result.reset++; // reset by the dying worker: the client knows at once, and retries
        setTimeout(resolve, 5);
      });
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (running) await once();
    }),
  );
  return result;
}

test.serial('a worker SIGKILLed again and again under a stream of new connections strands none of them', async (t) => {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const stream = connectionStream(sandbox.url, 16, done);
  const kills: string[] = [];
  for (let kill = 0; kill < 4; kill++) {
    await waitFor('both workers online', async () => (await sandbox.workers()).filter((w) => w.pm2_env.status === 'online').length === WORKERS, 20_000, 100);
    await sleep(700); // the new worker takes connections again
    const victim = (await sandbox.workers())[kill % WORKERS];
    if (!victim) throw new Error('no worker to kill');
    process.kill(victim.pid, 'SIGKILL');
    kills.push(`worker ${victim.pm_id} (pid ${victim.pid})`);
  }
  await sleep(1500);
  finish();
  const result = await stream;
  t.log(`SIGKILLed ${kills.join(', ')}; ${result.answered} answered, ${result.reset} reset, ${result.unanswered} unanswered for ${HUNG_AFTER_MS} ms; slowest ${result.slowest} ms`);
  t.is(kills.length, 4);
  t.true(result.answered > 100, `only ${result.answered} requests answered`);
  t.is(result.unanswered, 0, `requests left without an answer for ${HUNG_AFTER_MS} ms`);
});

/** A stand-in for a PM2 daemon: any process, started with the environment under test. */
function processWith(env: Record<string, string>): ChildProcess {
  return spawn('sleep', ['60'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: 'ignore' });
}

test.serial('a daemon started without NODE_CLUSTER_SCHED_POLICY=none is named in one warning with the way out', (t) => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'ra-pm2home-'));
  const withoutPolicy = processWith({});
  const withRr = processWith({ NODE_CLUSTER_SCHED_POLICY: 'rr' });
  const withNone = processWith({ NODE_CLUSTER_SCHED_POLICY: 'none' });
  try {
    const policyOf = (child: ChildProcess): ReturnType<typeof readDaemonPolicy> => {
      writeFileSync(path.join(home, 'pm2.pid'), String(child.pid));
      return readDaemonPolicy(home);
    };
    const warning = daemonPolicyWarning(policyOf(withoutPolicy));
    t.regex(warning ?? '', new RegExp(`^The PM2 daemon \\(pid ${withoutPolicy.pid}\\) was started without NODE_CLUSTER_SCHED_POLICY: .*round-robin.*NODE_CLUSTER_SCHED_POLICY=none npx pm2 update`));
    t.notRegex(warning ?? '', /\n/);
    t.regex(daemonPolicyWarning(policyOf(withRr)) ?? '', /started with NODE_CLUSTER_SCHED_POLICY=rr/);
    t.is(daemonPolicyWarning(policyOf(withNone)), undefined);
    rmSync(path.join(home, 'pm2.pid'));
    t.deepEqual(readDaemonPolicy(home).kind, 'unknown');
  } finally {
    for (const child of [withoutPolicy, withRr, withNone]) child.kill('SIGKILL');
    rmSync(home, { recursive: true, force: true });
  }
});
