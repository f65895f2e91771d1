// Load generation: autocannon for throughput and latency; a timeline client for fault drills,
// which needs the time and outcome of every single request.
import http from 'node:http';
import autocannon from 'autocannon';
import { sleep } from '../../test/helpers/wait';

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly method?: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Builds each request's body (unique registrations, mixed logins). */
  readonly bodyFor?: (sequence: number) => string;
}

export interface LoadResult {
  readonly requests: number;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly byStatus: Record<string, number>;
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  let sequence = 0;
  const bodyFor = options.bodyFor;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationSeconds,
        method: options.method ?? 'GET',
        headers: options.headers,
        body: options.body,
        timeout: 10,
        requests: bodyFor
          ? [{ method: options.method ?? 'POST', setupRequest: (request) => ({ ...request, body: bodyFor(sequence++) }) }]
          : undefined,
      },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        const byStatus: Record<string, number> = {};
        for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) byStatus[code] = stat?.count ?? 0;
        resolve({
          requests: result.requests.total,
          requestsPerSecond: result.requests.average,
          p50Ms: result.latency.p50,
          p99Ms: result.latency.p99,
          errors: result.errors,
          timeouts: result.timeouts,
          byStatus,
        });
      },
    );
  });
}

export interface Sample {
  /** The request's sequence number (see RequestSpec). */
  readonly sequence: number;
  /** When the response (or failure) came, ms since the epoch. */
  readonly at: number;
  readonly status: number; // 0 for a network error or timeout
  readonly ms: number;
  readonly error?: string;
}

export interface RequestSpec {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly body?: string;
}

export interface Timeline {
  /** Stops sending, waits for the requests in flight, and returns every outcome. */
  stop(): Promise<Sample[]>;
}

/**
 * `clients` keep-alive loops sending requests back to back, recording every outcome. `request`
 * is a path for GETs or a function of the request's sequence number. A request that takes
 * longer than `timeoutMs` counts as hung.
 */
export function startTimeline(
  baseUrl: string,
  request: string | ((sequence: number) => RequestSpec),
  clients: number,
  timeoutMs = 10_000,
  /** Pause between one client's requests: 0 is a load, more is a monitor's pace. */
  pauseMs = 0,
): Timeline {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const samples: Sample[] = [];
  const specFor = typeof request === 'string' ? (): RequestSpec => ({ method: 'GET', path: request }) : request;
  let running = true;
  let next = 0;
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const sequence = next++;
      const spec = specFor(sequence);
      const started = Date.now();
      const headers: Record<string, string | number> = {};
      if (spec.body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(spec.body);
      }
      const req = http.request(`${baseUrl}${spec.path}`, { method: spec.method, agent, headers, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('end', () => {
          samples.push({ sequence, at: Date.now(), status: res.statusCode ?? 0, ms: Date.now() - started });
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('hung')));
      req.on('error', (error) => {
        samples.push({ sequence, at: Date.now(), status: 0, ms: Date.now() - started, error: error.message });
        // A refused connection comes back at once: do not spin.
        setTimeout(resolve, 5);
      });
      req.end(spec.body);
    });
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      await once();
      if (pauseMs > 0 && running) await sleep(pauseMs);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return samples;
    },
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? Number.NaN) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** One side of alternatingRounds: its runs, and the medians over them. */
export interface RoundsSummary {
  readonly runs: readonly LoadResult[];
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function summarize(runs: readonly LoadResult[]): RoundsSummary {
  return {
    runs,
    requestsPerSecond: median(runs.map((run) => run.requestsPerSecond)),
    p50Ms: median(runs.map((run) => run.p50Ms)),
    p99Ms: median(runs.map((run) => run.p99Ms)),
  };
}

/**
 * The same GET load on a reference and on what is measured, in alternating rounds (reference
 * first), after a 1 s warm-up of each (JIT, pools, keep-alive sockets). The machine is noisy:
 * what counts is the medians of the two sides, and `ratio` (measured over reference throughput).
 */
export async function alternatingRounds(options: {
  readonly referenceUrl: string;
  readonly measuredUrl: string;
  readonly path: string;
  readonly rounds: number;
  readonly seconds: number;
  readonly connections?: number;
  /** Sent with every request to both sides (a bearer token). */
  readonly headers?: Record<string, string>;
}): Promise<{ reference: RoundsSummary; measured: RoundsSummary; ratio: number }> {
  const load = (url: string, durationSeconds: number): Promise<LoadResult> =>
    runLoad({ url: `${url}${options.path}`, connections: options.connections ?? 64, durationSeconds, headers: options.headers });
  await load(options.referenceUrl, 1);
  await load(options.measuredUrl, 1);
  const referenceRuns: LoadResult[] = [];
  const measuredRuns: LoadResult[] = [];
  for (let round = 0; round < options.rounds; round++) {
    referenceRuns.push(await load(options.referenceUrl, options.seconds));
    measuredRuns.push(await load(options.measuredUrl, options.seconds));
  }
  const reference = summarize(referenceRuns);
  const measured = summarize(measuredRuns);
  return { reference, measured, ratio: measured.requestsPerSecond / reference.requestsPerSecond };
}
