// The supervisor's /health watch against a real HTTP server on loopback: no alert for fewer
// failed probes in a row than the threshold, one alert per transition, and recovery at the first 200.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { HealthWatch } from '../src/supervisor/healthWatch';

test('alerts after the threshold of failures in a row, once, and recovers at the first 200', async (t) => {
  let status = 200;
  const server = http.createServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end('{"status":"x"}'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const watch = new HealthWatch(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 60_000, 3);
  const seen: string[] = [];
  watch.on('unhealthy', (reason) => seen.push(`unhealthy: ${reason}`));
  watch.on('recovered', () => seen.push('recovered'));

  await watch.check();
  status = 503;
  await watch.check();
  await watch.check();
  t.deepEqual(seen, [], 'two failures are below a threshold of three');
  status = 200;
  await watch.check();
  status = 503;
  await watch.check();
  await watch.check();
  t.deepEqual(seen, [], 'a good probe starts the count again');
  await watch.check();
  await watch.check();
  t.deepEqual(seen, ['unhealthy: /health answered 503: {"status":"x"}'], 'the third in a row alerts, the fourth does not');
  status = 200;
  await watch.check();
  await watch.check();
  t.deepEqual(seen, ['unhealthy: /health answered 503: {"status":"x"}', 'recovered']);
});

test('failures before the first 200 are the api starting up: no alert within the start-up bound, one after it', async (t) => {
  // Nothing listens on this port yet (a server bound and closed): every probe fails.
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const watch = new HealthWatch(`http://127.0.0.1:${port}`, 60_000, 2, 400);
  const seen: string[] = [];
  watch.on('unhealthy', (reason) => seen.push(reason));
  await watch.check();
  await watch.check();
  await watch.check();
  t.deepEqual(seen, [], 'still within the start-up bound');
  await new Promise((resolve) => setTimeout(resolve, 450));
  await watch.check();
  t.is(seen.length, 1, 'past the bound, the failures count');
  t.regex(seen[0] ?? '', /unreachable/);
});
