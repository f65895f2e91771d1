// Steady load through a load balancer on loopback: a few loops of GET /api/me (idempotent) and
// one slower loop of POST /api/register (not idempotent), over keep-alive connections, each
// request bounded, counted by outcome. Bounded in time: the loops end by themselves at maxMs.
import http from 'node:http';
import { sleep } from '../helpers/wait';

export interface MethodCounts {
  ok: number;
  failed: number;
  /** The first few failures, for the assertion message. */
  readonly failures: string[];
  /** The slowest answer, ms. */
  slowestMs: number;
}

export interface LoadResult {
  readonly get: MethodCounts;
  readonly post: MethodCounts;
  readonly seconds: number;
}

export interface Load {
  /** Counts so far. */
  counts(): LoadResult;
  /** Stops the loops and waits for every request in flight to end (answered, failed or timed out). */
  stop(): Promise<LoadResult>;
}

export interface LoadOptions {
  /** http://127.0.0.1:<port> of the load balancer. */
  readonly baseUrl: string;
  readonly token: string;
  readonly getLoops?: number;
  /** Pause between two requests of one loop. */
  readonly pauseMs?: number;
  /** One registration every this long; 0: none. */
  readonly postEveryMs?: number;
  /** Above the load balancer's own bound on a request (its server timeout and retries). */
  readonly requestTimeoutMs?: number;
  readonly maxMs?: number;
  /** A prefix that makes registered usernames unique to this load. */
  readonly label: string;
}

const emptyCounts = (): MethodCounts => ({ ok: 0, failed: 0, failures: [], slowestMs: 0 });

function send(agent: http.Agent, url: URL, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function startLoad(options: LoadOptions): Load {
  const getLoops = options.getLoops ?? 4;
  const pauseMs = options.pauseMs ?? 5;
  const postEveryMs = options.postEveryMs ?? 250;
  const timeoutMs = options.requestTimeoutMs ?? 45_000;
  const deadline = Date.now() + (options.maxMs ?? 120_000);
  const started = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: getLoops + 1 });
  const get = emptyCounts();
  const post = emptyCounts();
  let stopped = false;
  let registered = 0;

  const record = (counts: MethodCounts, what: string, startedAt: number, outcome: number | Error, expected: number): void => {
    const ms = Date.now() - startedAt;
    counts.slowestMs = Math.max(counts.slowestMs, ms);
    if (outcome === expected) {
      counts.ok += 1;
      return;
    }
    counts.failed += 1;
    const why = outcome instanceof Error ? outcome.message : `status ${outcome}`;
    if (counts.failures.length < 10) counts.failures.push(`${what} at +${((startedAt - started) / 1000).toFixed(1)} s: ${why} after ${ms} ms`);
  };

  const getLoop = async (): Promise<void> => {
    const url = new URL('/api/me', options.baseUrl);
    while (!stopped && Date.now() < deadline) {
      const at = Date.now();
      const outcome = await send(agent, url, 'GET', { authorization: `Bearer ${options.token}` }, undefined, timeoutMs).catch((error: Error) => error);
      record(get, 'GET /api/me', at, outcome, 200);
      await sleep(pauseMs);
    }
  };

  const postLoop = async (): Promise<void> => {
    const url = new URL('/api/register', options.baseUrl);
    while (!stopped && Date.now() < deadline) {
      const at = Date.now();
      registered += 1;
      const body = JSON.stringify({ username: `${options.label}${registered}`, password: 'load-password-1234' });
      const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      const outcome = await send(agent, url, 'POST', headers, body, timeoutMs).catch((error: Error) => error);
      record(post, 'POST /api/register', at, outcome, 201);
      await sleep(postEveryMs);
    }
  };

  const loops = [
    ...Array.from({ length: getLoops }, () => getLoop()),
    ...(postEveryMs > 0 ? [postLoop()] : []),
  ];
  const snapshot = (): LoadResult => ({
    get: { ...get, failures: [...get.failures] },
    post: { ...post, failures: [...post.failures] },
    seconds: (Date.now() - started) / 1000,
  });
  return {
    counts: snapshot,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return snapshot();
    },
  };
}
