// The pieces of cluster metrics on their own: the hot-path histogram as Prometheus text, the
// merge of several processes' snapshots, and finding siblings in the socket folder (a live one,
// one left by a dead process, one that never answers).
import { readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test from 'ava';
import { Counter, Gauge, Registry } from 'prom-client';
import { getLogger } from '../src/platform/logging/logger';
import { aggregate, gatherCluster, MetricsSocket, PEER_TIMEOUT_MS, snapshotOf } from '../src/platform/metrics/cluster';
import { LazyHistogram, registerCustom } from '../src/platform/metrics/lazyHistogram';
import { sample } from './helpers/metrics';
import { tempDir } from './helpers/service';

function processRegistry(worker: string, requests: number, seconds: number): Registry {
  const registry = new Registry();
  const histogram = new LazyHistogram('resilient_api_http_request_duration_seconds', 'time', ['method', 'route', 'status_code']);
  for (let i = 0; i < requests; i++) histogram.observe(['GET', '/health', '200'], seconds);
  registerCustom(registry, histogram.asCounter('resilient_api_http_requests_total', 'requests'));
  registerCustom(registry, histogram.asHistogram());
  new Counter({ name: 'resilient_api_db_retries_total', help: 'retries', labelNames: ['code'], registers: [registry] }).inc({ code: 'ECONNREFUSED' }, 2);
  new Gauge({ name: 'resilient_api_db_up', help: 'up', labelNames: ['worker'], registers: [registry] }).set({ worker }, 1);
  return registry;
}

test('the lazy histogram writes cumulative buckets, _sum, _count and its counter', async (t) => {
  const text = await processRegistry('0', 3, 0.2).metrics();
  const labels = 'method="GET",route="/health",status_code="200"';
  t.is(sample(text, `resilient_api_http_requests_total{${labels}}`), 3);
  t.is(sample(text, `resilient_api_http_request_duration_seconds_bucket{${labels},le="0.1"}`), 0);
  t.is(sample(text, `resilient_api_http_request_duration_seconds_bucket{${labels},le="0.25"}`), 3);
  t.is(sample(text, `resilient_api_http_request_duration_seconds_bucket{${labels},le="+Inf"}`), 3);
  t.regex(text, new RegExp(`resilient_api_http_request_duration_seconds_sum\\{${labels}\\} 0\\.6`));
  t.regex(text, /# TYPE resilient_api_http_request_duration_seconds histogram/);
  t.regex(text, /# TYPE resilient_api_http_requests_total counter/);
});

test('snapshots of several processes merge: counters and buckets add up, per-worker gauges stay apart', async (t) => {
  const view = {
    snapshots: [await snapshotOf('api-0', processRegistry('0', 3, 0.2)), await snapshotOf('api-1', processRegistry('1', 4, 2))],
    sources: { ok: 2, timeout: 0, gone: 0, error: 0 },
  };
  const text = await aggregate(view).metrics();
  const labels = 'method="GET",route="/health",status_code="200"';
  t.is(sample(text, `resilient_api_http_requests_total{${labels}}`), 7, text);
  t.is(sample(text, `resilient_api_http_request_duration_seconds_bucket{${labels},le="0.25"}`), 3);
  t.is(sample(text, `resilient_api_http_request_duration_seconds_bucket{${labels},le="2.5"}`), 7);
  t.is(sample(text, 'resilient_api_db_retries_total{code="ECONNREFUSED"}'), 4);
  t.is(sample(text, 'resilient_api_db_up{worker="0"}'), 1);
  t.is(sample(text, 'resilient_api_db_up{worker="1"}'), 1);
  t.is(sample(text, 'resilient_api_metrics_cluster_sources{state="ok"}'), 2);
});

test('siblings are found in the folder: a live one answers, a dead one is removed, a silent one times out', async (t) => {
  const dir = tempDir('ra-msock-');
  const log = getLogger('test');
  const live = new MetricsSocket(dir, 'api-1', processRegistry('1', 5, 0.01), log);
  t.true(await live.listen());
  // A socket left behind by a process that no longer exists (no such pid).
  writeFileSync(path.join(dir, 'api-2-999999999.sock'), '');
  // A live process that accepts but never answers (a stalled event loop looks like this).
  const silentPath = path.join(dir, `api-3-${process.pid}.sock`);
  const held = new Set<net.Socket>();
  const silent = net.createServer((socket) => held.add(socket));
  await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
  try {
    const own = await snapshotOf('api-0', processRegistry('0', 1, 0.01));
    const started = Date.now();
    const view = await gatherCluster(dir, own, undefined);
    const elapsed = Date.now() - started;
    t.deepEqual(view.sources, { ok: 2, timeout: 1, gone: 1, error: 0 });
    t.deepEqual(view.snapshots.map((s) => s.source).sort(), ['api-0', 'api-1']);
    t.true(elapsed < PEER_TIMEOUT_MS + 1500, `took ${elapsed} ms`);
    t.false(readdirSync(dir).includes('api-2-999999999.sock'), 'the dead process\'s socket is removed');
    const text = await aggregate(view).metrics();
    t.is(sample(text, 'resilient_api_http_requests_total{method="GET",route="/health",status_code="200"}'), 6);
  } finally {
    await live.close();
    for (const socket of held) socket.destroy();
    silent.close();
  }
});

test('closing a metrics socket removes its file', async (t) => {
  const dir = tempDir('ra-msock-');
  const socket = new MetricsSocket(dir, 'api-0', new Registry(), getLogger('test'));
  t.true(await socket.listen());
  t.deepEqual(readdirSync(dir), [path.basename(socket.path)]);
  await socket.close();
  t.deepEqual(readdirSync(dir), []);
});
