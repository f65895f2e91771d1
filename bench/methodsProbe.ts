// What a client who tries every HTTP method costs every later scrape: the production ecosystem
// (2 PM2 cluster workers), then every method Node's parser accepts (http.METHODS) on /health,
// /api/me and an unknown path. Prints each worker's own /metrics size, the cluster scrape's size
// and the number of request series before and after, and the method labels that appear.
//
//   npm run bench:methods
//
// Uses the MySQL/MariaDB of MYSQL_* in a database of its own and a PM2 daemon of its own under
// /tmp, both removed at the end.
import http from 'node:http';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase } from '../test/helpers/database';
import { rawExchange } from '../test/helpers/http';
import { scrapeSocket } from '../test/helpers/metrics';
import { createPm2Sandbox, type Pm2Sandbox } from '../test/helpers/pm2';
import { runScript } from '../src/platform/pm2/operator';

const PATHS = ['/health', '/api/me', '/no-such-path'];
const REQUEST_SERIES = /^resilient_api_http_requests_total\{/;

async function sizes(sandbox: Pm2Sandbox, label: string): Promise<string> {
  // Each worker serves its own metrics on a socket in this folder (src/platform/metrics/cluster.ts).
  const dir = path.join(sandbox.home, 'resilient-api', String(sandbox.port));
  const sockets = readdirSync(dir).filter((name) => name.startsWith('api-'));
  const perWorker = await Promise.all(sockets.map(async (name) => (await scrapeSocket(path.join(dir, name))).length));
  const cluster = (await sandbox.request('/metrics')).text;
  const series = cluster.split('\n').filter((line) => REQUEST_SERIES.test(line)).length;
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(`${label}: each worker ${perWorker.map(kb).join(', ')}; cluster scrape ${kb(cluster.length)}; ${series} request series`);
  return cluster;
}

async function main(): Promise<void> {
  const db = await createTestDatabase('ra_bench_methods');
  const sandbox = await createPm2Sandbox({ ...db.env, API_INSTANCES: '2' });
  try {
    await sandbox.startEcosystem('production', 2);
    await sizes(sandbox, 'before the probe');
    const statuses = new Map<string, number>();
    for (const target of PATHS) {
      for (const method of http.METHODS) {
        const requestTarget = method === 'CONNECT' ? 'example.com:443' : target;
        const { data } = await rawExchange(
          sandbox.port,
          (socket) => socket.write(`${method} ${requestTarget} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n`),
          3000,
        );
        const status = /^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 'no answer';
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }
    console.log(`sent ${http.METHODS.length * PATHS.length} requests (${http.METHODS.length} methods x ${PATHS.length} paths): ${JSON.stringify(Object.fromEntries(statuses))}`);
    const after = await sizes(sandbox, 'after the probe');
    const methods = new Set([...after.matchAll(/resilient_api_http_requests_total\{method="([^"]+)"/g)].map((match) => match[1]));
    console.log(`method labels: ${[...methods].sort().join(' ')}`);
  } finally {
    await sandbox.destroy();
    await db.drop();
  }
}

runScript(main);
