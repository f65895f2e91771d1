// A real PM2 daemon of the test's own: its own PM2_HOME (short, under /tmp: a long socket path
// hangs the daemon), its own log folder and port, driven through PM2's CLI, killed at the end.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { request, type Reply, type RequestOptions } from './http';
import { freePort } from './ports';
import { DAEMON_ENVIRONMENT } from '../../src/platform/pm2/operator';
import { FAULT_INJECTION_PRODUCTION_OPT_IN } from '../../src/platform/config';
import { ROOT } from './service';
import { waitFor } from './wait';

const run = promisify(execFile);
export const PM2_BIN = path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');

export interface Pm2Process {
  readonly name: string;
  readonly pm_id: number;
  readonly pid: number;
  /** PM2's last sample of the process: RSS in bytes, CPU in percent. */
  readonly monit?: { readonly memory: number; readonly cpu: number };
  readonly pm2_env: {
    readonly status: string;
    readonly restart_time: number;
    readonly pm_uptime: number;
    readonly exit_code?: number;
    readonly [key: string]: unknown;
  };
}

export interface Pm2Sandbox {
  readonly home: string;
  readonly logDir: string;
  readonly port: number;
  readonly url: string;
  /** The environment every command of this sandbox runs with. */
  readonly env: Record<string, string>;
  /** Runs `pm2 <args>` against this sandbox's daemon. */
  pm2(...args: string[]): Promise<string>;
  list(): Promise<Pm2Process[]>;
  /** The api workers, sorted by pm_id. */
  workers(): Promise<Pm2Process[]>;
  request(path: string, options?: RequestOptions): Promise<Reply>;
  supervisorLog(): string;
  backendLog(): string;
  /** Starts the ecosystem and waits for every api worker to be online and /health to be 200. */
  startEcosystem(envName: 'production' | 'development', expectedWorkers?: number): Promise<void>;
  /** Kills this sandbox's daemon (and with it its apps) and removes its folders. */
  destroy(): Promise<void>;
}

export async function createPm2Sandbox(env: Record<string, string> = {}): Promise<Pm2Sandbox> {
  const home = mkdtempSync('/tmp/pm2-');
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'ra-pm2-logs-'));
  // The apps run from the project root, where BACKUP_DIR defaults to backups/: production
  // migrates after a backup, and the backup app writes there. Kept out of the checkout.
  const backupParent = mkdtempSync(path.join(os.tmpdir(), 'ra-pm2-backups-'));
  const port = await freePort();
  const fullEnv: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    HOME: process.env['HOME'] ?? '/root',
    PM2_HOME: home,
    LOG_DIR: logDir,
    BACKUP_DIR: path.join(backupParent, 'backups'),
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET: 'pm2-test-secret-that-is-long-enough-for-hs256',
    // A short probe interval so health alerts come quickly in tests.
    HEALTH_CHECK_INTERVAL_MS: '1000',
    // What `npm start` gives the daemon it starts.
    ...DAEMON_ENVIRONMENT,
    // The sandboxes run the production ecosystem: fault injection there needs its deliberate opt-in.
    ...(env['FAULT_INJECTION'] === '1' ? { FAULT_INJECTION_IN_PRODUCTION: FAULT_INJECTION_PRODUCTION_OPT_IN } : {}),
    ...env,
  };
  // The service speaks HTTPS when given a certificate (TLS_CERT_FILE/TLS_KEY_FILE).
  const url = `${fullEnv['TLS_CERT_FILE'] ? 'https' : 'http'}://127.0.0.1:${port}`;
  const read = (file: string): string => {
    try {
      return readFileSync(path.join(logDir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const sandbox: Pm2Sandbox = {
    home,
    logDir,
    port,
    url,
    env: fullEnv,
    async pm2(...args) {
      const { stdout } = await run(process.execPath, [PM2_BIN, ...args], {
        cwd: ROOT,
        env: fullEnv,
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    },
    async list() {
      // A command that had to start the daemon prints PM2's banner before the JSON.
      const out = await sandbox.pm2('jlist');
      const json = out.split('\n').find((line) => line.startsWith('['));
      if (json === undefined) throw new Error(`pm2 jlist printed no list: ${out}`);
      return JSON.parse(json) as Pm2Process[];
    },
    async workers() {
      return (await sandbox.list()).filter((p) => p.name === 'api').sort((a, b) => a.pm_id - b.pm_id);
    },
    request: (p, o) => request(url, p, o),
    supervisorLog: () => read('supervisor.log'),
    backendLog: () => read('backend.log'),
    async startEcosystem(envName, expectedWorkers = 1) {
      await sandbox.pm2('start', path.join(ROOT, 'ecosystem.config.js'), '--env', envName);
      await waitFor(
        `${expectedWorkers} api worker(s) online`,
        async () => (await sandbox.workers()).filter((w) => w.pm2_env.status === 'online').length === expectedWorkers,
        30_000,
        200,
      );
      await waitFor('/health to answer 200', async () => (await sandbox.request('/health', { timeoutMs: 2000 })).status === 200, 30_000, 200);
      await waitFor('the supervisor to watch', () => /Supervisor started/.test(sandbox.supervisorLog()), 15_000, 100);
    },
    async destroy() {
      await sandbox.pm2('kill').catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
      rmSync(logDir, { recursive: true, force: true });
      rmSync(backupParent, { recursive: true, force: true });
    },
  };
  return sandbox;
}
