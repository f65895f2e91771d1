// npm run restore -- FILE [--yes]: loads a backup into the configured database, after a
// confirmation (--yes skips it). A truncated or foreign file is refused with nothing changed.
import { createInterface } from 'node:readline/promises';
import { DumpRejectedError, type DumpFacts } from '../src/platform/backups/dumpFile';
import { restoreBackup } from '../src/platform/backups/restore';
import { ConfigError, databaseTarget, loadConfig } from '../src/platform/config';
import { migrationOptions } from '../src/platform/backups/migrationOptions';
import { configureLoggingFor, getLogger } from '../src/platform/logging/logger';
import { messageOf, NamedError } from '../src/platform/util/errors';
import { runLoggedCommand } from '../src/platform/logging/oneShotCommand';

const USAGE = 'usage: npm run restore -- FILE [--yes]';

class UsageError extends NamedError {}

function parseArgs(argv: readonly string[]): { file: string; yes: boolean } {
  const files = argv.filter((arg) => !arg.startsWith('-'));
  const unknown = argv.filter((arg) => arg.startsWith('-') && arg !== '--yes' && arg !== '-y');
  if (unknown.length > 0) throw new UsageError(`unknown option ${unknown.join(' ')}; ${USAGE}`);
  if (files.length !== 1 || files[0] === undefined) throw new UsageError(USAGE);
  return { file: files[0], yes: argv.includes('--yes') || argv.includes('-y') };
}

/** Asks on the terminal; anything but "yes" (or no answer at all) cancels. */
async function askToReplace(target: string, file: string, facts: DumpFacts): Promise<boolean> {
  console.log(`${file}: ${facts.header}; ${facts.footer}; ${facts.uncompressedBytes} bytes of SQL`);
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  const closed = new Promise<string>((resolve) => prompt.once('close', () => resolve('')));
  try {
    const answer = await Promise.race([
      prompt.question(`This replaces the tables of ${target} with the contents of the dump. Type "yes" to go on: `),
      closed,
    ]);
    return answer.trim().toLowerCase() === 'yes';
  } finally {
    prompt.close();
  }
}

async function run(): Promise<number> {
  const { file, yes } = parseArgs(process.argv.slice(2));
  const config = loadConfig();
  configureLoggingFor(config, 'one-shot');
  const log = getLogger('restore');
  const target = databaseTarget(config.db);
  const result = await restoreBackup({
    db: config.db,
    file,
    log,
    timeoutMs: config.backup.timeoutMs,
    migrations: migrationOptions(config, log).migrations,
    confirm: (facts) => (yes ? Promise.resolve(true) : askToReplace(target, file, facts)),
  });
  if (!result) {
    console.log('Restore cancelled; nothing was changed.');
    return 1;
  }
  console.log(
    `Restored ${file} into ${target} in ${result.durationMs} ms: ${result.totalUsers} users` +
      (result.migrated.length > 0 ? `; then applied ${result.migrated.join(', ')}` : ''),
  );
  return 0;
}

runLoggedCommand('restore', run, (error) =>
  error instanceof DumpRejectedError
    ? `Refusing to restore ${process.argv.slice(2).find((arg) => !arg.startsWith('-'))}: ${error.message}. Nothing was changed.`
    : error instanceof UsageError || error instanceof ConfigError
      ? error.message
      : `Restore failed: ${messageOf(error)}`,
);
