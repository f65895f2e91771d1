// One host of the multi-host test: a network namespace running the service under a PM2 daemon of
// its own (its own PM2_HOME), started as an operator starts it, `pm2 start ecosystem.config.js
// --env production`, only through `ip netns exec`. Its logs and backups go to folders of its own
// under the run's folder, never into the checkout.
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { request, type Reply, type RequestOptions } from '../helpers/http';
import { PM2_BIN } from '../helpers/pm2';
import { ROOT } from '../helpers/service';
import { waitFor } from '../helpers/wait';
import { DAEMON_ENVIRONMENT } from '../../src/platform/pm2/operator';
import { createNamespace, type Namespace, RUN_ROOT, setLink } from './topology';

const run = promisify(execFile);

export const SERVICE_PORT = 8000;
const ECOSYSTEM = path.join(ROOT, 'ecosystem.config.js');

export interface Host {
  /** HOST_ID, and HAProxy's name for it. */
  readonly id: string;
  readonly ns: Namespace;
  readonly address: string;
  readonly port: number;
  readonly url: string;
  readonly logDir: string;
  readonly backupDir: string;
  /** Runs `pm2 <args>` in the host's namespace against its own daemon, with its environment. */
  pm2(...args: string[]): Promise<string>;
  /** A request straight to the host (from the root namespace, over the bridge). */
  request(urlPath: string, options?: RequestOptions): Promise<Reply>;
  backendLog(): string;
  /** The request-log lines of backend.log (category `request`). */
  requestLines(): string[];
  /** Scheduled backups in its BACKUP_DIR (deploy backups, `-predeploy`, left out). */
  scheduledDumps(): string[];
  start(): Promise<void>;
  waitReady(timeoutMs?: number): Promise<void>;
  cutLink(): void;
  restoreLink(): void;
}

export interface HostSettings {
  /** What every host shares: the database, the JWT secret, the trusted proxy and the rest. */
  readonly sharedEnv: Readonly<Record<string, string>>;
}

export function createHost(index: number, address: string, settings: HostSettings): Host {
  const id = `h${index}`;
  const ns = createNamespace(id, address);
  const dir = path.join(RUN_ROOT, id);
  const pm2Home = path.join(dir, 'pm2');
  const logDir = path.join(dir, 'logs');
  const backupDir = path.join(dir, 'backups');
  for (const folder of [pm2Home, logDir, backupDir]) mkdirSync(folder, { recursive: true });
  const url = `http://${address}:${SERVICE_PORT}`;
  // The whole environment of the host's shell: nothing from the test's own.
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? '/root',
    ...DAEMON_ENVIRONMENT,
    PM2_HOME: pm2Home,
    HOST_ID: id,
    HOST: '0.0.0.0',
    PORT: String(SERVICE_PORT),
    API_INSTANCES: '1',
    LOG_DIR: logDir,
    BACKUP_DIR: backupDir,
    ...settings.sharedEnv,
  };
  const read = (file: string): string => {
    try {
      return readFileSync(path.join(logDir, file), 'utf8');
    } catch {
      return '';
    }
  };
  const host: Host = {
    id,
    ns,
    address,
    port: SERVICE_PORT,
    url,
    logDir,
    backupDir,
    async pm2(...args) {
      const { stdout } = await run('ip', ['netns', 'exec', ns.name, process.execPath, PM2_BIN, ...args], {
        cwd: ROOT,
        env,
        timeout: 90_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    },
    request: (urlPath, options) => request(url, urlPath, options),
    backendLog: () => read('backend.log'),
    requestLines: () => read('backend.log').split('\n').filter((line) => / - request - /.test(line)),
    scheduledDumps: () => {
      try {
        return readdirSync(backupDir).filter((file) => file.endsWith('.sql.gz') && !file.includes('predeploy'));
      } catch {
        return [];
      }
    },
    async start() {
      await host.pm2('start', ECOSYSTEM, '--env', 'production');
      await host.waitReady(60_000);
    },
    async waitReady(timeoutMs = 30_000) {
      await waitFor(`${id} /readyz to answer 200`, async () => (await host.request('/readyz', { timeoutMs: 2000 })).status === 200, timeoutMs, 200);
    },
    cutLink: () => setLink(ns, 'down'),
    restoreLink: () => setLink(ns, 'up'),
  };
  return host;
}
