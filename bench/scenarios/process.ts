// The process itself: memory at steady load, and the time from spawn to ready.
import { spawn } from 'node:child_process';
import { freePort } from '../../test/helpers/ports';
import { MAIN, ROOT, tempDir } from '../../test/helpers/service';
import { sleep } from '../../test/helpers/wait';
import { type BenchContext, fixed, type ScenarioResult, BENCH_ENV } from '../lib/context';
import { median, runLoad } from '../lib/load';

export async function memoryAtLoad(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_memory');
  const service = await ctx.startService(db.env);
  await service.request('/api/register', { body: { username: 'memory', password: 'memory-password' } });
  const seconds = ctx.seconds(20);
  let peak = 0;
  const perWorker = new Map<number, number>();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const worker of await service.workers()) {
        const rss = worker.monit?.memory ?? 0;
        perWorker.set(worker.pm_id, Math.max(perWorker.get(worker.pm_id) ?? 0, rss));
        peak = Math.max(peak, rss);
      }
      await sleep(1000);
    }
  })();
  // Steady mixed load: status reads and logins (the heaviest path).
  const [statusLoad, loginLoad] = await Promise.all([
    runLoad({ url: `${service.url}/api/status`, connections: 48, durationSeconds: seconds }),
    runLoad({
      url: `${service.url}/api/login`,
      connections: 16,
      durationSeconds: seconds,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'memory', password: 'memory-password' }),
    }),
  ]);
  sampling = false;
  await sampler;
  const mb = (bytes: number) => bytes / 1024 / 1024;
  return {
    scenario: 'memory at steady load',
    measured:
      `peak RSS per worker ${[...perWorker.values()].map((b) => `${fixed(mb(b))} MB`).join(', ')} ` +
      `at ${fixed(statusLoad.requestsPerSecond)} status reads/s and ${fixed(loginLoad.requestsPerSecond, 1)} logins/s`,
    target: 'under 120 MB per worker',
    pass: peak > 0 && mb(peak) < 120,
    figures: { peakRssMb: mb(peak), workers: perWorker.size },
  };
}

/** Milliseconds from spawn to the 'ready' message PM2's wait_ready listens for. */
function spawnToReady(env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    let readyAfterMs: number | undefined;
    child.on('message', (message) => {
      if (message !== 'ready' || readyAfterMs !== undefined) return;
      readyAfterMs = Number(process.hrtime.bigint() - started) / 1e6;
      clearTimeout(timer);
      child.kill('SIGTERM');
    });
    child.once('exit', (code) =>
      readyAfterMs === undefined ? reject(new Error(`exited with ${code} before ready`)) : resolve(readyAfterMs),
    );
  });
}

export async function coldStart(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_cold');
  const times: number[] = [];
  const logDir = tempDir('ra-bench-cold-');
  for (let i = 0; i < (ctx.quick ? 2 : 7); i++) {
    const env = {
      PATH: process.env['PATH'] ?? '',
      NODE_ENV: 'production',
      JWT_SECRET: 'bench-secret-that-is-long-enough-for-hs256-x',
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      LOG_DIR: logDir,
      ...BENCH_ENV,
      ...db.env,
    };
    times.push(await spawnToReady(env));
  }
  // The first start also migrates an empty database; the rest find the schema current.
  const warm = median(times.slice(1));
  return {
    scenario: 'cold start',
    measured: `spawn to ready: median ${fixed(warm)} ms (first, which migrated: ${fixed(times[0] ?? Number.NaN)} ms)`,
    target: 'under 1.5 s',
    pass: warm < 1500,
    figures: { medianMs: warm, firstMs: times[0] ?? Number.NaN, runs: times.length },
  };
}
