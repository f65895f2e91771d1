// What metrics cost /health: two copies of the service side by side in one run, the same but for
// METRICS_ENABLED, measured in turns (on, off, on, off, …) so drift in the machine's load hits
// both alike; the medians and their ratio are printed, with the command.
//
//   npm run bench:metrics -- [rounds=5] [seconds=5] [connections=32]
//
// Each service is one process (no PM2) on loopback; the load generator runs in this process.
import autocannon from 'autocannon';
import { createTestDatabase } from '../test/helpers/database';
import { startService, type Service } from '../test/helpers/service';
import { median } from './lib/load';

const [rounds = 5, seconds = 5, connections = 32] = process.argv.slice(2).map(Number);

async function measure(service: Service): Promise<{ rps: number; p99: number; failed: number }> {
  const result = await autocannon({ url: `${service.url}/health`, connections, duration: seconds });
  return { rps: result.requests.average, p99: result.latency.p99, failed: result.errors + result.timeouts + result.non2xx };
}

async function main(): Promise<void> {
  const db = await createTestDatabase('ra_bench_metrics');
  const withMetrics = await startService({ env: { ...db.env, NODE_ENV: 'production', METRICS_ENABLED: '1' } });
  const without = await startService({ env: { ...db.env, NODE_ENV: 'production', METRICS_ENABLED: '0' } });
  const runs: Record<'on' | 'off', Array<{ rps: number; p99: number; failed: number }>> = { on: [], off: [] };
  try {
    // Warm both up (JIT, pool, health cache) before anything counts.
    await autocannon({ url: `${withMetrics.url}/health`, connections, duration: 2 });
    await autocannon({ url: `${without.url}/health`, connections, duration: 2 });
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first, so neither always follows the other.
      const order: Array<['on' | 'off', Service]> = round % 2 ? [['on', withMetrics], ['off', without]] : [['off', without], ['on', withMetrics]];
      for (const [label, service] of order) {
        const run = await measure(service);
        runs[label].push(run);
        console.log(`round ${round} metrics ${label.padEnd(3)} ${run.rps.toFixed(0).padStart(7)} req/s  p99 ${run.p99} ms  failed ${run.failed}`);
      }
    }
    const check = await withMetrics.request('/metrics');
    const counted = /resilient_api_http_requests_total\{method="GET",route="\/health",status_code="200"\} (\d+)/.exec(check.text)?.[1];
    const on = median(runs.on.map((r) => r.rps));
    const off = median(runs.off.map((r) => r.rps));
    console.log('');
    console.log(`command: npm run bench:metrics -- ${rounds} ${seconds} ${connections}   (autocannon, ${connections} connections, ${seconds} s per run, ${rounds} runs each, /health, one process each)`);
    console.log('| METRICS_ENABLED | median req/s | median p99 ms | runs (req/s) |');
    console.log('|---|---|---|---|');
    console.log(`| 1 | ${on.toFixed(0)} | ${median(runs.on.map((r) => r.p99))} | ${runs.on.map((r) => r.rps.toFixed(0)).join(', ')} |`);
    console.log(`| 0 | ${off.toFixed(0)} | ${median(runs.off.map((r) => r.p99))} | ${runs.off.map((r) => r.rps.toFixed(0)).join(', ')} |`);
    console.log(`ratio on/off: ${(on / off).toFixed(3)} (metrics cost ${((1 - on / off) * 100).toFixed(1)}% of /health throughput)`);
    console.log(`the metrics-on service counted ${counted ?? '?'} /health requests`);
  } finally {
    await withMetrics.stop();
    await without.stop();
    await db.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
