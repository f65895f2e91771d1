// A histogram for the hot path: each observation is a Map lookup and two array writes; the
// Prometheus values (cumulative buckets, _sum, _count, and optionally a matching counter) are
// built only when someone scrapes. prom-client's own Histogram hashes a label object on every
// observe, which on /health cost a measurable share of the throughput (docs/benchmarks.md, "Cost of metrics").
import type { Aggregator, Metric, Registry } from 'prom-client';

/** prom-client's default buckets, in seconds. */
const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;

/** One value of a metric as prom-client's registry reads it. */
interface SampleValue {
  readonly value: number;
  readonly labels: Labels;
  readonly metricName?: string;
}

/** What prom-client's Registry needs of a metric: a name, a type and get(). */
export interface CustomMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: Aggregator;
  get(): { name: string; help: string; type: string; aggregator: Aggregator; values: SampleValue[] };
}

/** Registers a metric that is not one of prom-client's classes (its registry only calls get()). */
export function registerCustom(registry: Registry, metric: CustomMetric): void {
  // prom-client types registerMetric for its own classes; its registry reads name, type and get() only.
  registry.registerMetric(metric as unknown as Metric);
}

interface Series {
  readonly labels: Labels;
  /** Observations per bucket, not cumulative; the last slot is for values above every bound. */
  readonly perBucket: Float64Array;
  sum: number;
  count: number;
}

export class LazyHistogram {
  private readonly series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly buckets: readonly number[] = DEFAULT_BUCKETS,
  ) {}

  /** `labelValues` in the order of labelNames; each distinct combination is one series. */
  observe(labelValues: readonly string[], value: number): void {
    const key = labelValues.length === 1 ? (labelValues[0] ?? '') : labelValues.join('\u0000');
    let series = this.series.get(key);
    if (series === undefined) {
      const labels: Labels = {};
      this.labelNames.forEach((name, index) => (labels[name] = labelValues[index] ?? ''));
      series = { labels, perBucket: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    let bucket = 0;
    while (bucket < this.buckets.length && value > (this.buckets[bucket] ?? Infinity)) bucket++;
    series.perBucket[bucket] = (series.perBucket[bucket] ?? 0) + 1;
    series.sum += value;
    series.count++;
  }

  /** The histogram as prom-client metric values: `_bucket` (cumulative, with le), `_sum`, `_count`. */
  asHistogram(): CustomMetric {
    const values = (): SampleValue[] => {
      const out: SampleValue[] = [];
      for (const series of this.series.values()) {
        let cumulative = 0;
        this.buckets.forEach((bound, index) => {
          cumulative += series.perBucket[index] ?? 0;
          out.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: String(bound) }, value: cumulative });
        });
        out.push({ metricName: `${this.name}_bucket`, labels: { ...series.labels, le: '+Inf' }, value: series.count });
        out.push({ metricName: `${this.name}_sum`, labels: series.labels, value: series.sum });
        out.push({ metricName: `${this.name}_count`, labels: series.labels, value: series.count });
      }
      return out;
    };
    return this.custom(this.name, this.help, 'histogram', values);
  }

  /** A counter of the observations with the same labels (e.g. resilient_api_http_requests_total beside the durations). */
  asCounter(name: string, help: string): CustomMetric {
    const values = (): SampleValue[] => [...this.series.values()].map((s) => ({ labels: s.labels, value: s.count }));
    return this.custom(name, help, 'counter', values);
  }

  private custom(name: string, help: string, type: CustomMetric['type'], values: () => SampleValue[]): CustomMetric {
    return {
      name,
      help,
      type,
      aggregator: 'sum',
      get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
    };
  }
}
