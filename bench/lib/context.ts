// What every scenario gets: the run's scale (full or quick), a database of its own, and the means
// to start the service or the baseline under a PM2 daemon of the benchmark's own.
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database';
import { createPm2Sandbox, type Pm2Sandbox } from '../../test/helpers/pm2';
import { ROOT } from '../../test/helpers/service';
import { waitFor } from '../../test/helpers/wait';

export interface ScenarioResult {
  readonly scenario: string;
  /** What was measured, in words and figures, for the table. */
  readonly measured: string;
  readonly target: string;
  readonly pass: boolean;
  /** The raw figures, for the JSON file. */
  readonly figures: Record<string, number | string>;
}

export interface BenchContext {
  readonly quick: boolean;
  /** Processes for the service and the baseline: one per core. */
  readonly cores: number;
  /** Seconds of load: the full figure, or 2 s in a quick run. */
  seconds(full: number): number;
  /** A fresh database on the shared server; dropped when the run ends. */
  database(prefix: string): Promise<TestDatabase>;
  /** The production ecosystem under its own PM2 daemon; destroyed when the run ends. */
  startService(env: Record<string, string>, workers?: number): Promise<Pm2Sandbox>;
  /**
   * A bare restify baseline under its own PM2 daemon; destroyed when the run ends. By default
   * bench/baseline.js (the /health twin); `script` picks another, given `env` (a database) and
   * ready once `probe` answers with any HTTP status.
   */
  startBaseline(workers?: number, options?: BaselineOptions): Promise<Pm2Sandbox>;
  cleanup(): Promise<void>;
  log(message: string): void;
}

export interface BaselineOptions {
  /** File under bench/. */
  readonly script?: string;
  readonly env?: Record<string, string>;
  readonly probe?: string;
}

/** Settings under which the service is measured: protection that would throttle a single load client is off. */
export const BENCH_ENV: Record<string, string> = {
  RATE_LIMIT_PER_MINUTE: '0',
  LOGIN_MAX_FAILURES: '10000',
  LOGIN_MAX_FAILURES_PER_IP: '1000000',
  LOG_LEVEL: 'info',
};

export function createContext(quick: boolean): BenchContext {
  const cores = os.availableParallelism();
  const databases: TestDatabase[] = [];
  const sandboxes: Pm2Sandbox[] = [];
  return {
    quick,
    cores,
    seconds: (full) => (quick ? 2 : full),
    async database(prefix) {
      const db = await createTestDatabase(prefix);
      databases.push(db);
      return db;
    },
    async startService(env, workers = cores) {
      const sandbox = await createPm2Sandbox({ ...BENCH_ENV, ...env, API_INSTANCES: String(workers) });
      sandboxes.push(sandbox);
      await sandbox.startEcosystem('production', workers);
      return sandbox;
    },
    async startBaseline(workers = cores, { script = 'baseline.js', env = {}, probe = '/health' } = {}) {
      const sandbox = await createPm2Sandbox(env);
      sandboxes.push(sandbox);
      await sandbox.pm2('start', path.join(ROOT, 'bench', script), '--name', 'baseline', '-i', String(workers), '--wait-ready');
      await waitFor('the baseline', async () => (await sandbox.request(probe, { timeoutMs: 1000 })).status > 0, 15_000, 100);
      return sandbox;
    },
    async cleanup() {
      for (const sandbox of sandboxes.splice(0)) await sandbox.destroy().catch(() => undefined);
      for (const db of databases.splice(0)) await db.drop().catch(() => undefined);
    },
    log: (message) => process.stderr.write(`  … ${message}\n`),
  };
}

/** Rounds for display. */
export const fixed = (value: number, digits = 0): string =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
