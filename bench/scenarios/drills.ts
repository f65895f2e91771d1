// Fault drills under load: workers killed, reloads, the database stopped.
import type { Pm2Sandbox } from '../../test/helpers/pm2';
import { createPrivateMariaDb } from '../../test/helpers/mariadb';
import { sleep } from '../../test/helpers/wait';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { runLoad, type Sample, startTimeline } from '../lib/load';

async function restartsOf(service: Pm2Sandbox): Promise<number> {
  return (await service.workers()).reduce((sum, worker) => sum + worker.pm2_env.restart_time, 0);
}

/** Milliseconds until worker `pmId` runs again with a pid other than `oldPid`. */
async function timeUntilBack(service: Pm2Sandbox, pmId: number, oldPid: number, since: number): Promise<number> {
  for (;;) {
    const worker = (await service.workers()).find((w) => w.pm_id === pmId);
    if (worker && worker.pid !== oldPid && worker.pid > 0 && worker.pm2_env.status === 'online') return Date.now() - since;
    if (Date.now() - since > 30_000) return Number.POSITIVE_INFINITY;
    await sleep(50);
  }
}

export async function killDrill(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_kill');
  const service = await ctx.startService(db.env, 2);
  const seconds = ctx.quick ? 6 : 30;
  const backTimes: number[] = [];
  const load = runLoad({ url: `${service.url}/api/status`, connections: 64, durationSeconds: seconds });
  const start = Date.now();
  const kills = (async () => {
    // One kill every 5 s, the first 2.5 s in, alternating between the workers.
    for (let kill = 0; 2500 + kill * 5000 < seconds * 1000 - 1000; kill++) {
      await sleep(Math.max(0, start + 2500 + kill * 5000 - Date.now()));
      const workers = await service.workers();
      const victim = workers[kill % workers.length];
      if (!victim) continue;
      const at = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      backTimes.push(await timeUntilBack(service, victim.pm_id, victim.pid, at));
    }
  })();
  const result = await load;
  await kills;
  const ok = result.byStatus['200'] ?? 0;
  const total = result.requests + result.errors;
  const successRate = ok / total;
  const slowestBack = Math.max(...backTimes);
  return {
    scenario: 'a worker SIGKILLed every 5 s under load, 2 workers',
    measured:
      `${fixed(successRate * 100, 3)}% of ${total} requests succeeded (${result.errors} errors); ` +
      `${backTimes.length} kills, workers back in ${backTimes.map((ms) => fixed(ms / 1000, 1)).join(', ')} s`,
    target: '≥ 99.9% succeed; workers back within 5 s',
    pass: successRate >= 0.999 && slowestBack <= 5000,
    figures: { successRate, total, ok, errors: result.errors, kills: backTimes.length, slowestBackMs: slowestBack },
  };
}

export async function reloadDrill(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_reload');
  const service = await ctx.startService(db.env, 2);
  const timeline = startTimeline(service.url, '/api/status', 32);
  await sleep(1000);
  const reloads = ctx.quick ? 1 : 3;
  for (let i = 0; i < reloads; i++) {
    await service.pm2('reload', 'api');
    await sleep(1000);
  }
  const samples = await timeline.stop();
  const failed = samples.filter((s) => s.status !== 200);
  return {
    scenario: `\`pm2 reload api\` ${reloads}× under load`,
    measured: `${failed.length} failed of ${samples.length} requests`,
    target: 'zero failed',
    pass: failed.length === 0 && samples.length > 0,
    figures: { requests: samples.length, failed: failed.length, reloads },
  };
}

function firstAfter(samples: readonly Sample[], since: number, status: number): Sample | undefined {
  return samples.find((s) => s.at >= since && s.status === status);
}

export async function databaseOutage(ctx: BenchContext): Promise<ScenarioResult> {
  const mariadb = await createPrivateMariaDb('resilient_api');
  try {
    const service = await ctx.startService(mariadb.env, 2);
    const restartsBefore = await restartsOf(service);
    const timeline = startTimeline(service.url, '/api/status', 16);
    await sleep(2000);
    const stoppedAt = Date.now();
    await mariadb.stop();
    await sleep(ctx.quick ? 3000 : 10_000);
    await mariadb.start(); // resolves once it answers queries
    const backAt = Date.now();
    await sleep(4000);
    const samples = await timeline.stop();
    const first503 = firstAfter(samples, stoppedAt, 503);
    const first200 = firstAfter(samples, backAt, 200);
    const hung = samples.filter((s) => s.error === 'hung' || s.ms >= 10_000).length;
    const restarts = (await restartsOf(service)) - restartsBefore;
    const to503 = first503 ? first503.at - stoppedAt : Number.POSITIVE_INFINITY;
    const to200 = first200 ? first200.at - backAt : Number.POSITIVE_INFINITY;
    const slowest503 = Math.max(0, ...samples.filter((s) => s.status === 503).map((s) => s.ms));
    return {
      scenario: `database stopped ${ctx.quick ? 3 : 10} s under load, then started`,
      measured:
        `first 503 after ${fixed(to503)} ms; first 200 ${fixed(to200)} ms after the database was back; ` +
        `${restarts} restarts; ${hung} hung; slowest 503 took ${slowest503} ms`,
      target: '503 within 1 s; recovery within 2 s; no restart; no hung request',
      pass: to503 <= 1000 && to200 <= 2000 && restarts === 0 && hung === 0,
      figures: { to503Ms: to503, to200Ms: to200, restarts, hung, requests: samples.length, slowest503Ms: slowest503 },
    };
  } finally {
    await mariadb.destroy();
  }
}
