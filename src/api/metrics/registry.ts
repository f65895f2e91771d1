// One api process's metrics: prom-client's default process and Node.js metrics, the event
// counters (counters.ts), the request and query histograms, and gauges read from live objects
// when scraped. Gauges that describe one process carry a `worker` label (its PM2 id), so the
// cluster scrape shows each worker; pool gauges are summed over the cluster.
import { X509Certificate } from 'node:crypto';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Database } from '../../platform/db/database';
import { type ApiCounters, eventCountersOf } from './counters';
import { registerCustom } from '../../platform/metrics/lazyHistogram';

const GAUGES_NAMED_AS_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

export interface RegistrySources {
  /** PM2 id of this worker ('0' outside PM2). */
  readonly worker: string;
  readonly version: string;
  readonly db: Pick<Database, 'poolStats' | 'monitor'>;
  readonly overload: { readonly overloaded: boolean; readonly lastEventLoopDelayMs: number };
  readonly lifecycle: { readonly draining: boolean };
  /** The password hasher's threads: jobs hashing now and waiting for a thread. */
  readonly passwords: { readonly load: { readonly running: number; readonly waiting: number } };
  /** The certificate this worker serves (PEM), when it speaks HTTPS. */
  readonly tlsCertificate?: string;
}

/** A registry of this process's metrics: the counters made by main, and gauges read from `sources`. */
export function createRegistry(sources: RegistrySources, counters: ApiCounters): Registry {
  const { httpRequests, dbQueries } = counters;
  const { worker, db, overload, lifecycle } = sources;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names three gauges with a counter's `_total` suffix, which `promtool check
  // metrics` rejects. Each repeats the sum of its per-type gauge (nodejs_active_handles etc.),
  // so dropping them loses nothing.
  for (const misnamed of GAUGES_NAMED_AS_COUNTERS) registry.removeSingleMetric(misnamed);
  for (const counter of eventCountersOf(counters)) registry.registerMetric(counter);
  registerCustom(
    registry,
    httpRequests.asCounter('resilient_api_http_requests_total', 'Requests answered, by method, route template and status'),
  );
  registerCustom(registry, httpRequests.asHistogram());
  registerCustom(registry, dbQueries.asHistogram());

  const registers = [registry];
  new Gauge({
    name: 'resilient_api_db_pool_connections',
    help: 'Pooled database connections by state (in_use, idle), all workers together',
    labelNames: ['state'],
    registers,
    collect() {
      const stats = db.poolStats();
      this.set({ state: 'in_use' }, stats.inUse);
      this.set({ state: 'idle' }, stats.idle);
    },
  });
  new Gauge({
    name: 'resilient_api_db_pool_waiting_requests',
    help: 'Requests waiting for a free pooled connection, all workers together',
    registers,
    collect() {
      this.set(db.poolStats().waiting);
    },
  });

  const perWorker = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['worker'],
      registers,
      collect() {
        this.set({ worker }, read());
      },
    });
  };
  perWorker('resilient_api_db_up', '1 while this worker reaches the database (its monitor pings it), else 0', () =>
    db.monitor.state === 'up' ? 1 : 0,
  );
  perWorker('resilient_api_overloaded', '1 while the overload guard answers new requests with 503, else 0', () =>
    overload.overloaded ? 1 : 0,
  );
  perWorker('resilient_api_event_loop_delay_seconds', 'Longest event-loop delay in the overload guard\'s last sample window', () =>
    overload.lastEventLoopDelayMs / 1000,
  );
  perWorker('resilient_api_draining', '1 while this worker drains for shutdown, else 0', () => (lifecycle.draining ? 1 : 0));
  perWorker('resilient_api_worker_uptime_seconds', 'Seconds since this worker started', () => process.uptime());
  new Gauge({
    name: 'resilient_api_password_hash_jobs',
    help: 'Password hashes by state: running on a hash thread, waiting for one (refused past PASSWORD_HASH_QUEUE_LIMIT), all workers together',
    labelNames: ['state'],
    registers,
    collect() {
      const load = sources.passwords.load;
      this.set({ state: 'running' }, load.running);
      this.set({ state: 'waiting' }, load.waiting);
    },
  });
  if (sources.tlsCertificate !== undefined) {
    // The certificate loaded at start is the one served until a reload, whatever the file holds
    // by now: after a renewal this keeps showing the old expiry until the workers are reloaded.
    const expiry = new Gauge({
      name: 'resilient_api_tls_certificate_expiry_timestamp_seconds',
      help: 'When the TLS certificate the workers serve expires (notAfter); the earliest over the workers',
      registers,
      aggregator: 'min',
    });
    expiry.set(Date.parse(new X509Certificate(sources.tlsCertificate).validTo) / 1000);
  }
  new Gauge({
    name: 'resilient_api_worker_info',
    help: 'One series per worker: its PM2 id, pid and the service version',
    labelNames: ['worker', 'pid', 'version'],
    registers,
    collect() {
      this.set({ worker, pid: String(process.pid), version: sources.version }, 1);
    },
  });
  return registry;
}

const QUERY_OK = ['ok'] as const;
const QUERY_ERROR = ['error'] as const;

/** Feeds the database layer's hooks into the query histogram and the retry and failure counters. */
export function observeDatabase(db: Pick<Database, 'observer'>, counters: Pick<ApiCounters, 'dbQueries' | 'dbRetries' | 'dbFailures'>): void {
  const { dbQueries, dbRetries, dbFailures } = counters;
  db.observer = {
    onQuery: (seconds, ok) => dbQueries.observe(ok ? QUERY_OK : QUERY_ERROR, seconds),
    onRetry: (code) => dbRetries.inc({ code }),
    onFailure: (code) => dbFailures.inc({ code }),
  };
}
