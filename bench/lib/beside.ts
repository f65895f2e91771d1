// One path of the service beside its bare baseline, one worker each: five alternating rounds
// (one with --quick), medians, and the result row. The machine is shared and noisy (±5% between
// runs), hence alternating rounds rather than one long run each.
import { type BenchContext, fixed, type ScenarioResult } from './context';
import { alternatingRounds } from './load';

export interface BesideBaseline {
  readonly scenario: string;
  readonly serviceUrl: string;
  readonly baselineUrl: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** The least fraction of the baseline's throughput that passes. */
  readonly minRatio: number;
  /** When set, the service's p99 must also stay under it. */
  readonly maxP99Ms?: number;
}

export async function measureBesideBaseline(ctx: BenchContext, options: BesideBaseline): Promise<ScenarioResult> {
  const rounds = ctx.quick ? 1 : 5;
  const { reference: baseline, measured, ratio } = await alternatingRounds({
    referenceUrl: options.baselineUrl,
    measuredUrl: options.serviceUrl,
    path: options.path,
    ...(options.headers ? { headers: options.headers } : {}),
    rounds,
    seconds: ctx.seconds(8),
  });
  const failures = measured.runs.reduce((sum, r) => sum + r.errors + r.timeouts + (r.requests - (r.byStatus['200'] ?? 0)), 0);
  const { requestsPerSecond: serviceRps, p50Ms, p99Ms } = measured;
  const baselineRps = baseline.requestsPerSecond;
  const { minRatio, maxP99Ms } = options;
  return {
    scenario: options.scenario,
    measured: `${fixed(serviceRps)} req/s = ${fixed(ratio, 2)} × baseline ${fixed(baselineRps)}; p50 ${fixed(p50Ms, 1)} ms, p99 ${fixed(p99Ms, 1)} ms`,
    target: `≥ ${minRatio} × baseline${maxP99Ms === undefined ? '' : `; p99 < ${maxP99Ms} ms`}`,
    pass: ratio >= minRatio && (maxP99Ms === undefined || p99Ms < maxP99Ms) && failures === 0,
    figures: { serviceRps, baselineRps, ratio, p50Ms, p99Ms, failures, rounds },
  };
}
