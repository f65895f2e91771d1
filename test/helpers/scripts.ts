// Runs an operator command (npm run backup/restore/migrate) as its own process, as an operator
// would: the compiled backup entry, or a script under scripts/ through tsx.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT, tempDir } from './service';

export interface ScriptRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ScriptOptions {
  readonly env?: Record<string, string>;
  /** Written to stdin, which is then closed. */
  readonly input?: string;
  readonly timeoutMs?: number;
}

/** `node --import tsx scripts/<name>.ts args…` with a test environment and the given variables. */
export function runScript(name: string, args: readonly string[], options: ScriptOptions = {}): Promise<ScriptRun> {
  return runNode(['--import', 'tsx', path.join('scripts', `${name}.ts`), ...args], options);
}

/** The compiled entry PM2 runs for scheduled backups. */
export function runBackup(options: ScriptOptions = {}): Promise<ScriptRun> {
  return runNode([path.join(ROOT, 'dist', 'src', 'backup', 'main.js')], options);
}

/**
 * The commands run from the project root, where LOG_DIR and BACKUP_DIR default to logs/ and
 * backups/: a test that names neither gets temporary folders, so nothing lands in the checkout.
 */
function outsideTheCheckout(env: Record<string, string> = {}): Record<string, string> {
  return {
    ...(env['LOG_DIR'] === undefined ? { LOG_DIR: tempDir('ra-script-logs-') } : {}),
    ...(env['BACKUP_DIR'] === undefined ? { BACKUP_DIR: path.join(tempDir('ra-script-backups-'), 'backups') } : {}),
  };
}

function runNode(args: readonly string[], options: ScriptOptions): Promise<ScriptRun> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', NODE_ENV: 'test', ...outsideTheCheckout(options.env), ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}
