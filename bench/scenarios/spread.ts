// How evenly the api workers share the requests, under the daemon's two scheduling policies:
// round-robin (Node's default: the daemon accepts and hands each connection to the next worker)
// and none (each worker accepts from the shared socket itself; what this project runs).
// Each answer's worker is read from /status/summary's per-worker request counts.
import http from 'node:http';
import type { Pm2Sandbox } from '../../test/helpers/pm2';
import { sleep } from '../../test/helpers/wait';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { runLoad } from '../lib/load';

const WORKERS = 2;
const CONNECTIONS = 32;
/** The route loaded: counted per worker (probes are not), cheap, and needs no database. */
const ROUTE = '/api/me';

async function countsPerWorker(service: Pm2Sandbox): Promise<Map<string, number>> {
  const reply = await service.request('/status/summary', { timeoutMs: 5000 });
  const summary = reply.body as { cluster?: { workers?: Array<{ worker: string; requests: number }> } } | undefined;
  const workers = summary?.cluster?.workers ?? [];
  if (workers.length !== WORKERS) throw new Error(`/status/summary answered ${reply.status} with ${workers.length} workers: ${reply.text.slice(0, 200)}`);
  return new Map(workers.map((w) => [w.worker, w.requests]));
}

/** `loops` loops, each sending GETs on a fresh connection back to back, for `seconds`. */
async function shortConnections(url: string, loops: number, seconds: number): Promise<number> {
  const endAt = Date.now() + seconds * 1000;
  let sent = 0;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(url, { agent: false, timeout: 10_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve());
      sent++;
    });
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < endAt) await once();
    }),
  );
  return sent;
}

interface Spread {
  /** Each worker's share of the requests, in percent, largest first. */
  readonly shares: number[];
  readonly requests: number;
}

async function spreadDuring(service: Pm2Sandbox, load: () => Promise<unknown>): Promise<Spread> {
  const before = await countsPerWorker(service);
  await load();
  await sleep(1500); // the summary is shared for up to a second
  const after = await countsPerWorker(service);
  const served = [...after].map(([worker, count]) => count - (before.get(worker) ?? 0));
  const requests = served.reduce((sum, n) => sum + n, 0);
  return { shares: served.map((n) => (requests > 0 ? (100 * n) / requests : 0)).sort((a, b) => b - a), requests };
}

const describeSpread = (spread: Spread): string =>
  `${spread.shares.map((share) => `${fixed(share)}%`).join(' / ')} of ${spread.requests}`;

export async function connectionSpread(ctx: BenchContext): Promise<ScenarioResult> {
  const seconds = ctx.seconds(10);
  const figures: Record<string, number | string> = {};
  const parts: string[] = [];
  let smallestNoneShare = 100;
  for (const policy of ['rr', 'none'] as const) {
    const db = await ctx.database(`ra_bench_spread_${policy}`);
    // The daemon reads the policy when it starts: each policy gets a daemon of its own.
    const service = await ctx.startService({ ...db.env, NODE_CLUSTER_SCHED_POLICY: policy }, WORKERS);
    const url = `${service.url}${ROUTE}`;
    const keepAlive = await spreadDuring(service, () => runLoad({ url, connections: CONNECTIONS, durationSeconds: seconds }));
    const short = await spreadDuring(service, () => shortConnections(url, CONNECTIONS, seconds));
    parts.push(`${policy === 'rr' ? 'round-robin' : 'none'}: ${describeSpread(keepAlive)} (keep-alive), ${describeSpread(short)} (a connection per request)`);
    figures[`${policy}KeepAlive`] = describeSpread(keepAlive);
    figures[`${policy}Short`] = describeSpread(short);
    if (policy === 'none') smallestNoneShare = Math.min(keepAlive.shares.at(-1) ?? 0, short.shares.at(-1) ?? 0);
    await ctx.cleanup(); // one cluster at a time on the machine
  }
  figures['smallestNoneSharePercent'] = smallestNoneShare;
  return {
    scenario: `requests per worker, ${WORKERS} workers, GET ${ROUTE}, ${CONNECTIONS} connections kept alive / ${CONNECTIONS} loops of one request per connection`,
    measured: parts.join('; '),
    target: `under none, each worker serves at least 25% (fair: ${100 / WORKERS}%)`,
    pass: smallestNoneShare >= 25,
    figures,
  };
}
