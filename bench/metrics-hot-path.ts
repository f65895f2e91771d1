// The per-request counting on its own, in this process: the lazy histogram the service uses
// against prom-client's labelled Counter.inc + Histogram.observe for the same requests.
//
//   npx tsx bench/metrics-hot-path.ts [requests=2000000]
import { Counter, Histogram, Registry } from 'prom-client';
import { LazyHistogram } from '../src/platform/metrics/lazyHistogram';

const requests = Number(process.argv[2] ?? 2_000_000);
const routes = ['/health', '/api/status', '/api/login', '/api/me', 'unmatched'];
const statuses = ['200', '401', '404', '503'];

function time(label: string, observe: (method: string, route: string, status: string, seconds: number) => void): number {
  // Warm-up, then the measured run.
  for (let i = 0; i < 100_000; i++) observe('GET', routes[i % 5] ?? '', statuses[i % 4] ?? '', 0.001);
  const started = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) observe(i % 3 ? 'GET' : 'POST', routes[i % 5] ?? '', statuses[i % 4] ?? '', (i % 100) / 1000);
  const ns = Number(process.hrtime.bigint() - started) / requests;
  console.log(`${label.padEnd(52)} ${ns.toFixed(0).padStart(5)} ns per request`);
  return ns;
}

const lazy = new LazyHistogram('resilient_api_http_request_duration_seconds', 'time', ['method', 'route', 'status_code']);
const lazyNs = time('lazy histogram (this service)', (method, route, status, seconds) =>
  lazy.observe([method, route, status], seconds),
);

const registry = new Registry();
const labelNames = ['method', 'route', 'status_code'] as const;
const counter = new Counter({ name: 'resilient_api_http_requests_total', help: 'requests', labelNames, registers: [registry] });
const histogram = new Histogram({ name: 'resilient_api_http_request_duration_seconds', help: 'time', labelNames, registers: [registry] });
const promNs = time('prom-client Counter.inc + Histogram.observe', (method, route, status, seconds) => {
  const labels = { method, route, status_code: status };
  counter.inc(labels);
  histogram.observe(labels, seconds);
});
console.log(`prom-client costs ${(promNs / lazyNs).toFixed(1)}× the lazy histogram per request`);
