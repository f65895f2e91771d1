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
const CANDIDATES: Readonly<Record<ClientTool, readonly string[]>> = {
  dump: ['mariadb-dump', 'mysqldump'],
  client: ['mariadb', 'mysql'],
};

/**
 * The first candidate that runs on this machine; throws a message naming them all otherwise.
 * Not cached: a look-up costs about 50 ms (a synchronous spawn, which also holds an api worker's
 * event loop when it backs up before migrating, at start-up), once or twice a backup or restore.
 */
export function findTool(tool: ClientTool): string {
  for (const candidate of CANDIDATES[tool]) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (probe.error === undefined && probe.status === 0) return candidate;
  }
  throw new Error(`Neither ${CANDIDATES[tool].join(' nor ')} was found on PATH; install the MariaDB or MySQL client`);
}

/**
 * An option as --help lists it, at the start of a line: `  --sandbox` or `  -B, --batch`. A
 * constant pattern (the option is looked up in code); `[ \t]`, not `\s`, so a run of blank
 * lines is not scanned once per line.
 */
const HELP_OPTION = /^[ \t]+(?:-\w, )?--([\w-]+)/gm;

/**
 * Options that keep the command-line client to SQL while it loads a dump, as far as this client
 * knows them (read from its --help): `--binary-mode` (no client commands but `\C` and DELIMITER;
 * MariaDB and MySQL), `--sandbox` (MariaDB 10.5.25, 10.6.18, 10.11.8 and later: no command that
 * touches files or runs programs), `--commands=OFF` and `--system-command=OFF` (MySQL 8.0.40,
 * 8.4.3 and later). The restore checks the dump for client commands first (dumpScanner.ts);
 * these make the client refuse one too.
 */
export function safeClientOptions(binary: string): string[] {
  const probe = spawnSync(binary, ['--no-defaults', '--help'], { encoding: 'utf8', timeout: 10_000 });
  const help = typeof probe.stdout === 'string' ? probe.stdout : '';
  const listed = new Set([...help.matchAll(HELP_OPTION)].map((match) => match[1]));
  const knows = (option: string): boolean => listed.has(option);
  const options: string[] = [];
  if (knows('binary-mode')) options.push('--binary-mode');
  if (knows('sandbox')) options.push('--sandbox');
  if (knows('commands')) options.push('--commands=OFF');
  if (knows('system-command')) options.push('--system-command=OFF');
  return options;
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
