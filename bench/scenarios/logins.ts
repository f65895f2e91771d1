// A flood of logins, half with the right password: logins per second against what the cores can
// hash, and /health's latency meanwhile (hashing must not starve the event loop).
import { PasswordHasher } from '../../src/api/auth/passwords';
import { createApiCounters } from '../../src/api/metrics/counters';
import { type BenchContext, fixed, type ScenarioResult } from '../lib/context';
import { runLoad, startTimeline } from '../lib/load';

/** Seconds one password hash takes here, with the service's parameters, one at a time. */
async function secondsPerHash(samples: number): Promise<number> {
  const hasher = new PasswordHasher({ concurrency: 1, queueLimit: 1, counters: createApiCounters() });
  try {
    await hasher.hash('warm-up password');
    const started = process.hrtime.bigint();
    for (let i = 0; i < samples; i++) await hasher.hash(`password number ${i}`);
    return Number(process.hrtime.bigint() - started) / 1e9 / samples;
  } finally {
    hasher.close();
  }
}

/**
 * Hashes per second with every core hashing at once: what bare hashing reaches here when the hashes
 * share the caches and memory bandwidth, as they do in a flood. Not the target's denominator,
 * which is one hash alone; shown beside it so a reader sees how much the service itself costs.
 */
async function hashesPerSecondOnAllCores(cores: number, perCore: number): Promise<number> {
  const hasher = new PasswordHasher({ concurrency: cores, queueLimit: cores * perCore, counters: createApiCounters() });
  try {
    await Promise.all(Array.from({ length: cores }, (_, i) => hasher.hash(`warm-up ${i}`)));
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: cores * perCore }, (_, i) => hasher.hash(`password number ${i}`)));
    return (cores * perCore) / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    hasher.close();
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function loginFlood(ctx: BenchContext): Promise<ScenarioResult> {
  const db = await ctx.database('ra_bench_login');
  const service = await ctx.startService(db.env);
  const created = await service.request('/api/register', { body: { username: 'flood', password: 'flood-password' } });
  if (created.status !== 201) throw new Error(`setup failed: ${created.text}`);
  const hashSeconds = await secondsPerHash(ctx.quick ? 5 : 20);
  const capacity = ctx.cores / hashSeconds;
  const bareParallel = await hashesPerSecondOnAllCores(ctx.cores, ctx.quick ? 3 : 20);

  // A monitor's pace (50 probes a second), not a second load competing for the cores.
  const probe = startTimeline(service.url, '/health', 1, 10_000, 20);
  const seconds = ctx.seconds(15);
  const flood = await runLoad({
    url: `${service.url}/api/login`,
    connections: 64,
    durationSeconds: seconds,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    bodyFor: (n) => JSON.stringify({ username: 'flood', password: n % 2 ? 'flood-password' : 'wrong-password' }),
  });
  const healthSamples = await probe.stop();
  const answered = (flood.byStatus['200'] ?? 0) + (flood.byStatus['401'] ?? 0);
  const loginsPerSecond = answered / seconds;
  const healthP99 = percentile(healthSamples.map((s) => s.ms), 99);
  const healthFailures = healthSamples.filter((s) => s.status !== 200).length;
  return {
    scenario: 'login flood (valid and invalid), 64 connections',
    measured:
      `${fixed(loginsPerSecond, 1)} logins/s = ${fixed(loginsPerSecond / capacity, 2)} × capacity ${fixed(capacity, 1)} ` +
      `(${ctx.cores} cores / ${fixed(hashSeconds * 1000, 1)} ms per hash); /health p99 ${fixed(healthP99, 1)} ms; ` +
      `bare hashing on all ${ctx.cores} cores at once: ${fixed(bareParallel, 1)}/s, logins ${fixed(loginsPerSecond / bareParallel, 2)} of it`,
    target: '≥ 0.8 × cores / hash time; /health p99 < 50 ms',
    pass: loginsPerSecond >= 0.8 * capacity && healthP99 < 50 && healthFailures === 0,
    figures: {
      loginsPerSecond,
      capacity,
      hashMs: hashSeconds * 1000,
      bareHashesPerSecondAllCores: bareParallel,
      healthP99Ms: healthP99,
      healthProbes: healthSamples.length,
      healthFailures,
      other: flood.requests - answered,
    },
  };
}
