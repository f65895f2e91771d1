// Reading Prometheus text in tests.
import http from 'node:http';
import type { Reply, RequestOptions } from './http';

/** GET /metrics of a service or sandbox; anything but 200 fails the test. */
export async function scrapeMetrics(target: { request(path: string, options?: RequestOptions): Promise<Reply> }, timeoutMs?: number): Promise<string> {
  const reply = await target.request('/metrics', timeoutMs === undefined ? {} : { timeoutMs });
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.text.slice(0, 200)}`);
  return reply.text;
}

/** The value of one sample line, given its exact name and labels (`name{a="b"}`), or undefined. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** How much each series moved from one scrape to the next (a missing series counts as 0). */
export function changes(before: string, after: string): (series: string) => number {
  return (series) => (sample(after, series) ?? 0) - (sample(before, series) ?? 0);
}

/** GET /metrics of one process straight from its socket file: that process's own series (what an operator can do with curl). */
export function scrapeSocket(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: file, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`${file} did not answer`)));
    req.on('error', reject);
  });
}
