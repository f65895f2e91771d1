// The chaos drill: registrations and logins from many clients while workers are SIGKILLed, the
// database is stopped and frozen, and the api app is reloaded. Every acknowledged write must be
// in the database once, no request may hang, nothing may answer 500.
import { createPrivateMariaDb } from '../../test/helpers/mariadb';
import { type ChaosEvent, chaosTargetsMet, describeChaos, runChaos } from '../lib/chaos';
import type { BenchContext, ScenarioResult } from '../lib/context';

/** 80 s in full (as long as the drill that found the stranded connections), 12 s quick. */
function plan(quick: boolean): { seconds: number; events: ChaosEvent[] } {
  if (quick) {
    return {
      seconds: 12,
      events: [
        { atMs: 2000, action: { kind: 'kill-worker' } },
        { atMs: 4000, action: { kind: 'stop-database', forMs: 1500 } },
        { atMs: 8000, action: { kind: 'freeze-database', forMs: 1500 } },
        { atMs: 10_000, action: { kind: 'reload' } },
      ],
    };
  }
  return {
    seconds: 80,
    events: [
      { atMs: 8000, action: { kind: 'kill-worker' } },
      { atMs: 18_000, action: { kind: 'stop-database', forMs: 5000 } },
      { atMs: 32_000, action: { kind: 'freeze-database', forMs: 3000 } },
      { atMs: 44_000, action: { kind: 'reload' } },
      { atMs: 58_000, action: { kind: 'kill-worker' } },
      { atMs: 68_000, action: { kind: 'kill-worker' } },
    ],
  };
}

export async function chaosDrill(ctx: BenchContext): Promise<ScenarioResult> {
  const mariadb = await createPrivateMariaDb('resilient_api');
  try {
    const workers = 2;
    const service = await ctx.startService(mariadb.env, workers);
    const { seconds, events } = plan(ctx.quick);
    const report = await runChaos({ service, mariadb, database: 'resilient_api', workers, clients: 16, seconds, events, onNote: ctx.log });
    return {
      scenario: `chaos: 16 clients registering and logging in for ${Math.round(report.seconds)} s, 2 workers; ${report.log.filter((line) => !/done|started|thawed|over/.test(line)).map((line) => line.replace(/ \(pid \d+\)/, '')).join('; ')}`,
      measured: describeChaos(report),
      target: 'every 201 in the database once; 0 hung; no 500; healthy at the end',
      pass: chaosTargetsMet(report),
      figures: {
        acknowledged: report.acknowledged,
        found: report.found,
        duplicates: report.duplicates,
        loginsRefused: report.loginsRefused,
        hung: report.hung,
        slowestMs: report.slowestMs,
        requests: report.requests,
        status500: report.byStatus['500'] ?? 0,
        networkErrors: report.byStatus['0'] ?? 0,
        byStatus: JSON.stringify(report.byStatus),
        networkErrorKinds: JSON.stringify(report.networkErrors),
        healthyAtEnd: String(report.healthyAtEnd),
      },
    };
  } finally {
    await mariadb.destroy();
  }
}
