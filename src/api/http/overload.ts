// The overload guard (after fastify/under-pressure): when the event loop lags, the heap nears
// V8's limit or too many requests wait for a database connection, new requests get a cheap 503
// with Retry-After instead of piling up behind the ones already in trouble. Probes and the
// status endpoints are exempt, so monitors see the state instead of a wall of 503s.
//
// Cost on the hot path: one comparison per request (the caller already has the arrival time).
// A sampler every SAMPLE_INTERVAL_MS reads the event-loop delay histogram, the heap and the pool.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Request, Response } from 'restify';
import type { OverloadConfig } from '../../platform/config';
import type { Logger } from '../../platform/logging/logger';
import type { ApiCounters, OverloadReason } from '../metrics/counters';
import { RETRY_AFTER_SECONDS } from './errors';
import { MONITORING_ROUTES, pathOf } from './paths';
import { requestIdOf, type ResponseWriter } from './respond';

const SAMPLE_INTERVAL_MS = 250;
const HISTOGRAM_RESOLUTION_MS = 10;

export interface OverloadState {
  readonly overloaded: boolean;
  /** Human-readable, e.g. "event loop delay 2004 ms over 1000 ms". */
  readonly reasons: readonly string[];
  readonly since: number;
}

interface Finding {
  readonly reason: OverloadReason;
  readonly text: string;
}

const SHED = Symbol('shed by the overload guard');
type Sheddable = Request & { [SHED]?: true };

/** True for a request this guard answered (the request log leaves those out: see reject()). */
export function wasShed(req: Request): boolean {
  return (req as Sheddable)[SHED] === true;
}

export function isExemptFromOverload(url: string | undefined): boolean {
  // Never shed: liveness, readiness, health, metrics and the status page must tell what is going on.
  return MONITORING_ROUTES.has(pathOf(url));
}

export class OverloadGuard {
  private current: OverloadState = { overloaded: false, reasons: [], since: Date.now() };
  private firstReason: OverloadReason = 'event_loop_delay';
  private lastSampleAt = performance.now();
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private shedCount = 0;
  /** Longest event-loop delay seen in the last sample window, in ms (for the metrics). */
  lastEventLoopDelayMs = 0;

  constructor(
    private readonly limits: OverloadConfig,
    private readonly poolWaiting: () => number,
    private readonly log: Pick<Logger, 'info' | 'warn'>,
    private readonly counters: Pick<ApiCounters, 'overloadRejections'>,
  ) {}

  get state(): OverloadState {
    return this.current;
  }

  get overloaded(): boolean {
    return this.current.overloaded;
  }

  start(): void {
    if (this.timer) return;
    this.histogram = monitorEventLoopDelay({ resolution: HISTOGRAM_RESOLUTION_MS });
    this.histogram.enable();
    this.lastSampleAt = performance.now();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
  }

  /**
   * Called for every request with its arrival time (performance.now()). Besides the sampled
   * state, a sampler that is overdue means the loop is stalled right now: requests that queued
   * during a stall are shed even when they are read before the sampler gets to run.
   */
  shouldShed(now: number): boolean {
    if (this.current.overloaded) return true;
    const limit = this.limits.maxEventLoopDelayMs;
    if (limit === 0 || this.timer === undefined) return false;
    const stalledMs = now - this.lastSampleAt - SAMPLE_INTERVAL_MS;
    if (stalledMs <= limit) return false;
    this.update([{ reason: 'event_loop_delay', text: delayText(stalledMs, limit) }]);
    return true;
  }

  /**
   * Answers 503 with Retry-After from a `first` handler, without logging each one: under
   * overload, logs must not add load (the transitions are logged, with a count).
   */
  reject(req: Request, res: Response, writer: Pick<ResponseWriter, 'sendJsonBeforeRouting'>): void {
    (req as Sheddable)[SHED] = true;
    this.shedCount++;
    this.counters.overloadRejections.inc({ reason: this.firstReason });
    writer.sendJsonBeforeRouting(
      res,
      503,
      { code: 'ServiceUnavailable', message: 'Server is overloaded; try again shortly', requestId: requestIdOf(req, res) },
      { 'Retry-After': String(RETRY_AFTER_SECONDS) },
    );
  }

  /** One sample of every limit; public for tests. */
  sample(): void {
    const now = performance.now();
    const lateMs = now - this.lastSampleAt - SAMPLE_INTERVAL_MS;
    this.lastSampleAt = now;
    const histogramMaxMs = this.histogram ? this.histogram.max / 1e6 - HISTOGRAM_RESOLUTION_MS : 0;
    this.histogram?.reset();
    this.lastEventLoopDelayMs = Math.max(0, lateMs, histogramMaxMs);

    const findings: Finding[] = [];
    const { maxEventLoopDelayMs, maxHeapPercent, maxPoolWaiting } = this.limits;
    if (maxEventLoopDelayMs > 0 && this.lastEventLoopDelayMs > maxEventLoopDelayMs) {
      findings.push({ reason: 'event_loop_delay', text: delayText(this.lastEventLoopDelayMs, maxEventLoopDelayMs) });
    }
    if (maxHeapPercent > 0) {
      const heap = v8.getHeapStatistics();
      const percent = (heap.used_heap_size / heap.heap_size_limit) * 100;
      if (percent > maxHeapPercent) {
        findings.push({ reason: 'heap', text: `heap used ${percent.toFixed(1)}% of its limit, over ${maxHeapPercent}%` });
      }
    }
    if (maxPoolWaiting > 0) {
      const waiting = this.poolWaiting();
      if (waiting > maxPoolWaiting) {
        findings.push({ reason: 'db_pool_queue', text: `${waiting} requests waiting for a database connection, over ${maxPoolWaiting}` });
      }
    }
    this.update(findings);
  }

  private update(findings: readonly Finding[]): void {
    const overloaded = findings.length > 0;
    const was = this.current;
    if (overloaded) this.firstReason = findings[0]?.reason ?? 'event_loop_delay';
    this.current = {
      overloaded,
      reasons: findings.map((finding) => finding.text),
      since: overloaded === was.overloaded ? was.since : Date.now(),
    };
    if (overloaded && !was.overloaded) {
      this.shedCount = 0;
      this.log.warn(`Overloaded (${this.current.reasons.join('; ')}): answering 503 to new requests until it passes`);
    } else if (!overloaded && was.overloaded) {
      const seconds = ((Date.now() - was.since) / 1000).toFixed(1);
      this.log.info(`Overload over after ${seconds} s; ${this.shedCount} requests were answered 503 meanwhile`);
    }
  }
}

function delayText(delayMs: number, limitMs: number): string {
  return `event loop delay ${Math.round(delayMs)} ms, over ${limitMs} ms`;
}
