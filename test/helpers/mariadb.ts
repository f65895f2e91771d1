// A private MariaDB server for fault tests: its own data folder, port and socket, so stopping,
// killing or freezing it never touches the shared server. Only processes started here are
// signalled, by their own pid.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { freePort } from './ports';
import { waitFor } from './wait';

export interface PrivateMariaDb {
  readonly host: string;
  readonly port: number;
  readonly env: Record<string, string>;
  /** Starts (or restarts) the server and waits until it answers. */
  start(): Promise<void>;
  /** Clean shutdown (SIGTERM) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: accepts connections in the kernel, answers nothing. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Stops the server and deletes its folder. */
  destroy(): Promise<void>;
}

function mysqlUid(): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, 'mysql']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

export async function createPrivateMariaDb(database = 'resilient_api'): Promise<PrivateMariaDb> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ra-mdb-'));
  const dataDir = path.join(dir, 'data');
  const { uid, gid } = mysqlUid();
  chownSync(dir, uid, gid);
  execFileSync(
    'mariadb-install-db',
    [
      '--user=mysql',
      `--datadir=${dataDir}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--skip-name-resolve',
    ],
    { stdio: 'ignore' },
  );
  const port = await freePort();
  let child: ChildProcess | undefined;

  const answers = async (): Promise<boolean> => {
    const connection = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 });
    await connection.query('SELECT 1');
    await connection.end();
    return true;
  };

  const exitOf = (proc: ChildProcess): Promise<void> =>
    proc.exitCode !== null || proc.signalCode !== null
      ? Promise.resolve()
      : new Promise((resolve) => proc.once('exit', () => resolve()));

  const server: PrivateMariaDb = {
    host: '127.0.0.1',
    port,
    env: {
      MYSQL_HOST: '127.0.0.1',
      MYSQL_PORT: String(port),
      MYSQL_USER: 'root',
      MYSQL_PASSWORD: '',
      MYSQL_DATABASE: database,
    },
    async start() {
      child = spawn(
        'mariadbd',
        [
          '--no-defaults',
          '--user=mysql',
          `--datadir=${dataDir}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${path.join(dir, 'sock')}`,
          `--pid-file=${path.join(dir, 'pid')}`,
          '--skip-log-bin',
          '--skip-name-resolve',
          '--innodb-buffer-pool-size=32M',
          '--innodb-log-file-size=16M',
          '--max-connections=200',
        ],
        { stdio: 'ignore' },
      );
      const started = child;
      await waitFor(`private mariadbd on port ${port}`, async () => {
        if (started.exitCode !== null) throw new Error(`mariadbd exited with ${started.exitCode}`);
        return answers();
      }, 30_000, 100);
    },
    async stop() {
      if (!child) return;
      const proc = child;
      proc.kill('SIGCONT');
      proc.kill('SIGTERM');
      await exitOf(proc);
    },
    async kill() {
      if (!child) return;
      const proc = child;
      proc.kill('SIGKILL');
      await exitOf(proc);
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async destroy() {
      if (child) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await exitOf(child);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
