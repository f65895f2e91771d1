// One scrape covers the whole PM2 cluster: counters of 2 workers add up, per-worker gauges show
// each worker, the supervisor's restart count is in it, and a scrape still answers while a
// worker is dead or stalled.
import { readdirSync } from 'node:fs';
import { version } from '../src/platform/version';
import path from 'node:path';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from './helpers/database';
import { sample, scrapeMetrics, scrapeSocket } from './helpers/metrics';
import { createPm2Sandbox, type Pm2Sandbox } from './helpers/pm2';
import { sleep, waitFor } from './helpers/wait';

let db: TestDatabase;
let sandbox: Pm2Sandbox;

test.before(async () => {
  db = await createTestDatabase('ra_metrics_cluster');
  sandbox = await createPm2Sandbox({ ...db.env, FAULT_INJECTION: '1', API_INSTANCES: '2' });
  await sandbox.startEcosystem('production', 2);
});

test.after.always(async () => {
  await sandbox?.destroy();
  await db?.drop();
});

const socketDir = (): string => path.join(sandbox.home, 'resilient-api', String(sandbox.port));

const scrape = (): Promise<string> => scrapeMetrics(sandbox, 5000);

/** The supervisor counts restarts by reason; a crash (a non-zero exit) is one. */
const CRASH_RESTARTS = 'resilient_api_restarts_total{app="api",reason="crash"}';
const LIVEZ = 'resilient_api_http_requests_total{method="GET",route="/livez",status_code="200"}';

test.serial('after N requests spread over 2 workers, one scrape shows N', async (t) => {
  const workers = await sandbox.workers();
  t.is(workers.length, 2);
  const before = sample(await scrape(), LIVEZ) ?? 0;
  const requests = 40;
  // A fresh connection per request: PM2 hands connections to the workers in turn.
  for (let i = 0; i < requests; i++) t.is((await sandbox.request('/livez')).status, 200);

  const sockets = readdirSync(socketDir()).filter((name) => name.startsWith('api-'));
  t.is(sockets.length, 2, sockets.join());
  const perWorker = await Promise.all(sockets.map(async (name) => sample(await scrapeSocket(path.join(socketDir(), name)), LIVEZ) ?? 0));
  t.true(perWorker.every((count) => count > 0), `both workers served some: ${perWorker.join(' + ')}`);

  // Every scrape, whichever worker answers it, holds the whole cluster.
  for (let i = 0; i < 4; i++) {
    const text = await scrape();
    t.is(sample(text, LIVEZ), before + requests);
    t.is(sample(text, 'resilient_api_metrics_cluster_sources{state="ok"}'), 3, 'two workers and the supervisor');
    for (const worker of workers) {
      t.is(sample(text, `resilient_api_db_up{worker="${worker.pm_id}"}`), 1);
      t.is(sample(text, `resilient_api_overloaded{worker="${worker.pm_id}"}`), 0);
      t.is(sample(text, `resilient_api_worker_info{worker="${worker.pm_id}",pid="${worker.pid}",version="${version}"}`), 1);
    }
  }
});

test.serial('a worker that crashed: scrapes answer during the restart, and the supervisor\'s count shows it', async (t) => {
  const before = await scrape();
  const restartsBefore = sample(before, CRASH_RESTARTS) ?? 0;
  t.is((await sandbox.request('/__fault/crash', { method: 'POST' })).status, 202);
  await sleep(500);
  // Within PM2's 3 s restart delay only one worker runs; a scrape still answers at once.
  const during = await sandbox.request('/metrics', { timeoutMs: 3000 });
  t.is(during.status, 200);
  t.true(during.ms < 2000, `answered in ${Math.round(during.ms)} ms`);
  t.is(sample(during.text, 'resilient_api_metrics_cluster_sources{state="timeout"}'), 0);
  t.is(sample(during.text, 'resilient_api_metrics_cluster_sources{state="ok"}'), 2, 'the scrape came while one worker was down');

  const after = await waitFor('the restart in the metrics', async () => {
    const text = await scrape();
    return (sample(text, CRASH_RESTARTS) ?? 0) === restartsBefore + 1 &&
      sample(text, 'resilient_api_metrics_cluster_sources{state="ok"}') === 3
      ? text
      : undefined;
  }, 20_000, 250);
  t.true((sample(after, 'resilient_api_exits_total{app="api",reason="crash"}') ?? 0) >= 1);
  const summary = await sandbox.request('/status/summary');
  t.is(summary.body.cluster.restarts, restartsBefore + 1);
  t.is(summary.body.cluster.workers.length, 2);
});

test.serial('a stalled worker delays a scrape answered by its sibling by at most the peer timeout', async (t) => {
  await waitFor('two workers', async () => sample(await scrape(), 'resilient_api_metrics_cluster_sources{state="ok"}') === 3, 20_000, 250);
  t.is((await sandbox.request('/__fault/block?ms=4000', { method: 'POST' })).status, 202);
  await sleep(200);
  // Connections go to the workers in turn: of four scrapes, some land on the healthy worker.
  const replies = await Promise.all(Array.from({ length: 4 }, () => sandbox.request('/metrics', { timeoutMs: 10_000 })));
  t.true(replies.every((reply) => reply.status === 200));
  const bySibling = replies.filter((reply) => sample(reply.text, 'resilient_api_metrics_cluster_sources{state="timeout"}') === 1);
  t.true(bySibling.length > 0, 'some scrape was answered while the other worker was stalled');
  for (const reply of bySibling) t.true(reply.ms < 3000, `answered in ${Math.round(reply.ms)} ms`);
});
