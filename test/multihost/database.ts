// The multi-host test's own MariaDB: a private mariadbd (its own data folder) run inside the
// database namespace and bound to that namespace's address, with one account the hosts use from
// their addresses. The test itself talks to it as root over its Unix socket (a socket file is
// reachable from any network namespace).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { waitFor } from '../helpers/wait';
import { type Namespace, SUBNET_PREFIX } from './topology';

export interface HostDatabase {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** mariadbd's pid: where its CPU time is read. */
  readonly pid: number;
  /** The MYSQL_* variables of a host. */
  readonly env: Readonly<Record<string, string>>;
  /** A root connection over the Unix socket (close it). */
  connect(): Promise<mysql.Connection>;
  stop(): Promise<void>;
}

const PORT = 3306;
const DATABASE = 'resilient_api';
const USER = 'resilient_api';
const PASSWORD = 'multihost-test-password';

export async function startHostDatabase(ns: Namespace, dir: string): Promise<HostDatabase> {
  mkdirSync(dir, { recursive: true });
  const uid = Number(execFileSync('id', ['-u', 'mysql']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'mysql']).toString().trim());
  chownSync(dir, uid, gid);
  const dataDir = path.join(dir, 'data');
  const socketPath = path.join(dir, 'sock');
  execFileSync(
    'mariadb-install-db',
    ['--user=mysql', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve'],
    { stdio: 'ignore' },
  );
  // `ip netns exec` execs mariadbd in place: the child's pid is the server's.
  const child: ChildProcess = spawn(
    'ip',
    [
      'netns', 'exec', ns.name,
      'mariadbd',
      '--no-defaults',
      '--user=mysql',
      `--datadir=${dataDir}`,
      `--port=${PORT}`,
      `--bind-address=${ns.address}`,
      `--socket=${socketPath}`,
      `--pid-file=${path.join(dir, 'pid')}`,
      '--skip-log-bin',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=64M',
      '--innodb-log-file-size=16M',
      '--max-connections=300',
    ],
    { stdio: 'ignore' },
  );
  const connect = (): Promise<mysql.Connection> => mysql.createConnection({ socketPath, user: 'root', connectTimeout: 2000 });
  await waitFor('the multi-host mariadbd', async () => {
    if (child.exitCode !== null) throw new Error(`mariadbd exited with ${child.exitCode}`);
    const connection = await connect();
    await connection.end();
    return true;
  }, 30_000, 100);

  const root = await connect();
  await root.query(`CREATE DATABASE ${DATABASE}`);
  await root.query(`CREATE USER '${USER}'@'${SUBNET_PREFIX}.%' IDENTIFIED BY '${PASSWORD}'`);
  await root.query(`GRANT ALL PRIVILEGES ON ${DATABASE}.* TO '${USER}'@'${SUBNET_PREFIX}.%'`);
  await root.end();

  return {
    host: ns.address,
    port: PORT,
    user: USER,
    password: PASSWORD,
    database: DATABASE,
    pid: child.pid ?? 0,
    env: { MYSQL_HOST: ns.address, MYSQL_PORT: String(PORT), MYSQL_USER: USER, MYSQL_PASSWORD: PASSWORD, MYSQL_DATABASE: DATABASE },
    connect,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
