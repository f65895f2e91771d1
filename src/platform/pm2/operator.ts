// What the start and stop scripts share: the ecosystem, the PM2 connection, and the checks that
// turn a failure into one clear message and a non-zero exit.
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Config, ConfigError, loadConfig } from '../config';
import * as pm2 from './pm2';
import { type HealthAnswer, probeHealth } from '../util/healthProbe';
import { NamedError } from '../util/errors';
import { projectRoot } from '../util/projectRoot';

export const ROOT = projectRoot(__dirname);
export const ECOSYSTEM_FILE = path.join(ROOT, 'ecosystem.config.js');

/** A failure the operator can act on: printed alone, without a stack, exit code 1. */
export class OperatorError extends NamedError {}

/**
 * Fixes the mode for this process (config.ts and ecosystem.config.js, which PM2's API loads
 * here, both read NODE_ENV) and reads the configuration; a bad one is an OperatorError. Works
 * from the project root, as the PM2 apps do (their cwd), so relative paths (LOG_DIR, BACKUP_DIR,
 * the generated .jwt-secret) name the same files here and there.
 */
export function configFor(mode: 'development' | 'production'): Config {
  process.chdir(ROOT);
  process.env['NODE_ENV'] = mode;
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) throw new OperatorError(error.message);
    throw error;
  }
  if (mode === 'production' && config.jwt.source.endsWith('(generated now)')) {
    step('No JWT_SECRET or JWT_SECRET_FILE set: generated a secret into .jwt-secret (mode 0600); every process reads it from there');
  }
  return config;
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

/** One of the project's apps as the connected daemon runs it, and in which mode. */
export interface RunningApp {
  readonly name: string;
  /** NODE_ENV of its environment: `production`, `development`, `test`, or `unknown`. */
  readonly mode: string;
  /** Its working directory: this checkout (ROOT) or another one. */
  readonly cwd: string;
}

/** The processes of the connected daemon that carry one of `names`, with their mode. */
export async function runningApps(names: readonly string[]): Promise<RunningApp[]> {
  return (await pm2.list()).flatMap((proc) => {
    if (!proc.name || !names.includes(proc.name)) return [];
    // PM2 keeps an app's environment both in pm2_env.env and flattened into pm2_env; its types list neither.
    const env = proc.pm2_env as { env?: Record<string, unknown>; NODE_ENV?: unknown; pm_cwd?: string } | undefined;
    const mode = env?.env?.['NODE_ENV'] ?? env?.NODE_ENV;
    return [{ name: proc.name, mode: typeof mode === 'string' && mode !== '' ? mode : 'unknown', cwd: env?.pm_cwd ?? '' }];
  });
}

/** `api (production), backup (production)`: each name once, for a message. */
export function describeApps(apps: readonly RunningApp[]): string {
  return [...new Set(apps.map((app) => `${app.name} (${app.mode}${app.cwd === ROOT ? '' : `, in ${app.cwd}`})`))].join(', ');
}

/**
 * The environment of every PM2 daemon started from here (npm start, npm run dev, the tests).
 * MALLOC_MMAP_THRESHOLD_: handed to every worker at exec time, the only moment glibc reads it:
 * allocations of 128 KiB and more (each hash buffer) are mapped and unmapped on their own
 * instead of staying in malloc's arenas for good. NODE_CLUSTER_SCHED_POLICY=none: read once by
 * the daemon, Node's cluster primary: each worker accepts its connections from the shared socket
 * itself, so a worker that dies strands none (under the default round-robin the daemon accepts
 * and hands each connection over IPC, and one handed to a dying worker is never answered).
 */
export const DAEMON_ENVIRONMENT: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: '131072',
  NODE_CLUSTER_SCHED_POLICY: 'none',
};

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
