// Starts the compiled service (dist/) as a real child process on a free loopback port.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports';
import { request, type Reply, type RequestOptions } from './http';
import { waitFor } from './wait';

export const ROOT = path.resolve(__dirname, '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'src', 'api', 'main.js');

// Log folders this helper made. Tests read them after a service stops, so they go only when the
// test file's process ends (ava gives each file its own process).
const createdLogDirs: string[] = [];
process.once('exit', () => {
  for (const dir of createdLogDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder removed when this test file's process ends. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  createdLogDirs.push(dir);
  return dir;
}

export interface Service {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  readonly logDir: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** backend.log so far. */
  log(): string;
  request(path: string, options?: RequestOptions): Promise<Reply>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** 'live': /livez answers (default); 'none': return at once. */
  waitFor?: 'live' | 'none';
  logDir?: string;
  /** The working directory (default: the checkout); a temporary one keeps a generated .jwt-secret out of the checkout. */
  cwd?: string;
}

export async function startService(options: StartOptions = {}): Promise<Service> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first`);
  const port = await freePort();
  const logDir = options.logDir ?? tempDir('ra-logs-');
  const child = spawn(process.execPath, [MAIN], {
    cwd: options.cwd ?? ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_DIR: logDir,
      // Its default, backups/ under the working directory (the checkout), gets a backup before
      // migrating in production and the backup status the metrics read.
      ...(options.env?.['BACKUP_DIR'] === undefined ? { BACKUP_DIR: path.join(tempDir('ra-backups-'), 'backups') } : {}),
      JWT_SECRET: 'test-secret-that-is-long-enough-for-hs256-signing',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ended = false;
  void exited.then(() => (ended = true));

  // HTTPS when the service is given a certificate.
  const url = `${options.env?.['TLS_CERT_FILE'] ? 'https' : 'http'}://127.0.0.1:${port}`;
  const service: Service = {
    url,
    port,
    process: child,
    logDir,
    output: () => output,
    log: () => {
      try {
        return readFileSync(path.join(logDir, 'backend.log'), 'utf8');
      } catch {
        return '';
      }
    },
    request: (p, o) => request(url, p, o),
    exited,
    async stop(signal = 'SIGTERM') {
      if (!ended) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  if (options.waitFor !== 'none') {
    try {
      await waitFor(
        `the service on port ${port} to answer /livez`,
        async () => {
          if (ended) throw new Error(`the service exited during start-up:\n${output}`);
          return (await request(url, '/livez', { timeoutMs: 1000 })).status === 200;
        },
        20_000,
        50,
      );
    } catch (error) {
      await service.stop('SIGKILL');
      throw error;
    }
  }
  return service;
}
