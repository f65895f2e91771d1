// What the start and stop scripts share: the ecosystem, the PM2 connection, and the checks that
// turn a failure into one clear message and a non-zero exit.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Config, ConfigError, loadConfig, persistentSecret } from '../../src/config';
import * as pm2 from '../../src/supervisor/pm2';
import { type HealthAnswer, probeHealth } from '../../src/util/healthProbe';
import { NamedError } from '../../src/util/errors';

export const ROOT = path.resolve(__dirname, '..', '..');
export const ECOSYSTEM_FILE = path.join(ROOT, 'ecosystem.config.js');

/** A failure the operator can act on: printed alone, without a stack, exit code 1. */
export class OperatorError extends NamedError {}

/**
 * Fixes the mode for this process (config.ts and ecosystem.config.js, which PM2's API loads
 * here, both read NODE_ENV) and reads the configuration; a bad one is an OperatorError.
 */
export function configFor(mode: 'development' | 'production'): Config {
  process.env['NODE_ENV'] = mode;
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new OperatorError(error.message);
    throw error;
  }
}

/** The names of the apps the ecosystem declares (the same in every mode). */
export function appNames(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- PM2 ecosystem files are CommonJS by design
  return (require(ECOSYSTEM_FILE) as { apps: Array<{ readonly name: string }> }).apps.map((app) => app.name);
}

/**
 * Stops and removes those of `names` the connected daemon runs (each drains first), announcing
 * each; returns how many there were.
 */
export async function removeApps(names: readonly string[], announce?: (name: string) => void): Promise<number> {
  const present = new Set((await pm2.list()).flatMap((proc) => (proc.name && names.includes(proc.name) ? [proc.name] : [])));
  for (const name of present) {
    announce?.(name);
    await pm2.remove(name);
  }
  return present.size;
}

/** Ends the connected daemon when it runs nothing else: no idle daemon is left behind. */
export async function killDaemonIfIdle(): Promise<void> {
  if ((await pm2.list()).length === 0) await pm2.killDaemon().catch(() => undefined);
}

export function step(message: string): void {
  console.log(`» ${message}`);
}

/** Compiles src/ to dist/; a type error stops here with tsc's own report above. */
export function build(): void {
  step('Building (tsc -p tsconfig.build.json)');
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new OperatorError('Build failed: fix the TypeScript errors above and try again.');
}

/**
 * Production requires a JWT_SECRET of its own. When the operator gave none, one is generated
 * once and kept in .jwt-secret (mode 0600, git-ignored), so tokens survive restarts.
 */
export function ensureJwtSecret(): void {
  if (process.env['JWT_SECRET']) return;
  const file = path.join(ROOT, '.jwt-secret');
  const existed = existsSync(file);
  process.env['JWT_SECRET'] = persistentSecret(file);
  if (!existed) step('No JWT_SECRET set: generated one in .jwt-secret (set JWT_SECRET to use your own)');
}

/**
 * The environment a PM2 daemon started from here hands to every worker at exec time, the only
 * moment glibc reads it: allocations of 128 KiB and more (each scrypt takes 16 MiB) are mapped
 * and unmapped on their own instead of staying in malloc's arenas for good.
 */
export const DAEMON_ENVIRONMENT: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

export function prepareDaemonEnvironment(): void {
  for (const [name, value] of Object.entries(DAEMON_ENVIRONMENT)) process.env[name] ??= value;
}

/** Fails with a clear message when something else already listens on the port. */
export function assertPortFree(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE'
          ? new OperatorError(`Port ${port} on ${host} is already in use by another program: stop it, or set PORT.`)
          : new OperatorError(`Cannot listen on ${host}:${port}: ${error.message}`),
      );
    });
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

/** Waits until /health answers 200; returns the last answer either way. */
export async function waitForHealth(baseUrl: string, timeoutMs: number): Promise<HealthAnswer> {
  const deadline = Date.now() + timeoutMs;
  let last: HealthAnswer = { status: 0, body: '' };
  while (Date.now() < deadline) {
    last = await probeHealth(baseUrl);
    if (last.status === 200) return last;
    await sleep(250);
  }
  return last;
}

/**
 * Runs a script's main, printing an OperatorError as one line and anything else with its stack,
 * then exits: a CLI must return, and PM2's client may not let it. When the daemon it has just
 * killed closes its socket before the client marks itself closing, pm2-axon arms a reconnect
 * timer that re-arms itself for ever (about half the runs of `npm stop` here).
 */
export function runScript(main: () => Promise<void>, options: { exitWhenDone?: boolean } = {}): void {
  main().then(
    () => {
      if (options.exitWhenDone !== false) process.exit(0);
    },
    (error: unknown) => {
      if (error instanceof OperatorError) console.error(`✖ ${error.message}`);
      else console.error('✖ Unexpected failure:', error);
      process.exit(1);
    },
  );
}
