// The MariaDB/MySQL command-line tools the backup and the restore run: which binary this machine
// has, and how it gets the credentials without them ever appearing on a command line.
//
// Credentials go in an option file (mode 0600, in a private 0700 folder, removed afterwards) named
// by --defaults-extra-file. `ps` then shows only that file's path. MYSQL_PWD is not used: the
// clients call it insecure, and MySQL 8 deprecates it.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseConfig } from '../config';

export type ClientTool = 'dump' | 'client';

/** The MariaDB name first, then the MySQL one (MariaDB still ships both, MySQL only the latter). */
const CANDIDATES: Record<ClientTool, readonly string[]> = {
  dump: ['mariadb-dump', 'mysqldump'],
  client: ['mariadb', 'mysql'],
};

const found = new Map<ClientTool, string>();

/** The first candidate that runs on this machine; throws a message naming them all otherwise. */
export function findTool(tool: ClientTool): string {
  const known = found.get(tool);
  if (known !== undefined) return known;
  for (const candidate of CANDIDATES[tool]) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (probe.error === undefined && probe.status === 0) {
      found.set(tool, candidate);
      return candidate;
    }
  }
  throw new Error(`Neither ${CANDIDATES[tool].join(' nor ')} was found on PATH; install the MariaDB or MySQL client`);
}

/** A value for an option file: quoted, with the escapes the MariaDB and MySQL parsers understand. */
function optionValue(value: string): string {
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `"${escaped}"`;
}

function optionFileText(db: DatabaseConfig): string {
  return [
    '[client]',
    `host=${optionValue(db.host)}`,
    `port=${db.port}`,
    `user=${optionValue(db.user)}`,
    `password=${optionValue(db.password)}`,
    // mysql2 always speaks TCP; without this the clients would take the Unix socket for "localhost".
    'protocol=TCP',
    // Only the command-line client knows this option ([client] would make the dump tool refuse
    // to start); a dump that cannot connect is bounded by BACKUP_TIMEOUT_SECONDS instead.
    '[mysql]',
    `connect-timeout=${Math.max(1, Math.ceil(db.connectTimeoutMs / 1000))}`,
    '',
  ].join('\n');
}

/**
 * Runs `work` with the path of a private option file holding the credentials; the file and its
 * folder are removed afterwards, whatever happens. Pass `--defaults-extra-file=<path>` as the
 * tool's first argument (the tools refuse it anywhere else).
 */
export async function withOptionFile<T>(db: DatabaseConfig, work: (optionFile: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ra-cred-'));
  try {
    const file = path.join(dir, 'client.cnf');
    await writeFile(file, optionFileText(db), { mode: 0o600, flag: 'wx' });
    return await work(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
