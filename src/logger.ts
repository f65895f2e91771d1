// log4js set-up: the backend.log line format, redaction, rotation and cluster-safe writing.
//
// Every process appends whole lines to the same file (O_APPEND keeps them whole).
// Rotating one file from several processes is not safe, so exactly one party rotates:
// - the service alone (no PM2): log4js rolls the file itself by size;
// - under PM2: the supervisor app renames the file (see supervisor/logFiles.ts) and each
//   process notices the new inode within a second and reopens (the `reopening-file` appender).
// One-shot commands (migrate, restore, backup) never rotate: they may run beside either.
import { appendFileSync, mkdirSync, stat } from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import log4js from 'log4js';
import { type Config, type ConfigError, type Env, EnvReader, type LogLevel, readLogFiles } from './config';
import { redact, registerSecret } from './redact';

export type Logger = log4js.Logger;

export interface LoggerOptions {
  readonly dir: string;
  readonly level: LogLevel;
  readonly maxBytes: number;
  readonly backups: number;
  readonly console: boolean;
  /** File name inside dir; backend.log unless a process keeps a log of its own. */
  readonly fileName?: string;
  /** 'self': log4js rolls the file; 'external': another process rotates it and we reopen. */
  readonly rotation?: 'self' | 'external';
  /** 'supervisor': FATAL events become lines that begin with CRITICAL (supervisor.log). */
  readonly layout?: 'backend' | 'supervisor';
}

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `2025-12-17 10:30:05`, local time, as the contract's line format shows. */
function formatTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** An error argument is printed as its message on the line and its stack on the lines after. */
function formatData(data: readonly unknown[]): string {
  const parts: string[] = [];
  const stacks: string[] = [];
  for (const item of data) {
    if (item instanceof Error) {
      parts.push(`${item.name}: ${item.message}`);
      stacks.push(item.stack ?? String(item));
    } else {
      parts.push(typeof item === 'string' ? item : format('%o', item));
    }
  }
  const line = parts.join(' ');
  return stacks.length > 0 ? `${line}\n${stacks.join('\n')}` : line;
}

export function formatLine(date: Date, category: string, level: string, data: readonly unknown[]): string {
  return redact(`${formatTimestamp(date)} - ${category} - ${level} - ${formatData(data)}`);
}

log4js.addLayout('backend', () => (event: log4js.LoggingEvent) =>
  formatLine(event.startTime, event.categoryName, event.level.levelStr, event.data),
);

/** supervisor.log: as backend.log, except that the contract's crash-loop line begins with CRITICAL. */
log4js.addLayout('supervisor', () => (event: log4js.LoggingEvent) =>
  event.level.levelStr === 'FATAL'
    ? redact(`CRITICAL ${formatTimestamp(event.startTime)} - ${event.categoryName} - ${formatData(event.data)}`)
    : formatLine(event.startTime, event.categoryName, event.level.levelStr, event.data),
);

/**
 * log4js's file appender plus a cheap inode check: when the file was renamed or removed by
 * the rotating process, reopen it so new lines go to the fresh file.
 */
const reopeningFileAppender = {
  configure(config: { filename: string }, layouts: unknown, ...rest: unknown[]) {
    // log4js ships no types for its appender modules; the file appender's configure is stable API.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fileAppender = require('log4js/lib/appenders/file') as {
      configure: (...args: unknown[]) => ((event: log4js.LoggingEvent) => void) & {
        reopen: () => void;
        shutdown: (done: () => void) => void;
      };
    };
    const appender = fileAppender.configure(config, layouts, ...rest);
    let knownInode: number | undefined;
    const timer = setInterval(() => {
      stat(config.filename, (error, stats) => {
        if (error || (knownInode !== undefined && stats.ino !== knownInode)) {
          knownInode = undefined;
          appender.reopen();
          return;
        }
        knownInode = stats.ino;
      });
    }, 1000);
    timer.unref();
    const wrapped = (event: log4js.LoggingEvent): void => appender(event);
    wrapped.shutdown = (done: () => void): void => {
      clearInterval(timer);
      appender.shutdown(done);
    };
    return wrapped;
  },
};

let currentFile: string | undefined;

/**
 * Logging for a process that has loaded its configuration: the configured files, and the
 * configuration's secrets known to the redactor before the first line can carry one.
 */
export function configureLoggingFor(config: Pick<Config, 'log' | 'db' | 'jwt'>, kind: 'service' | 'one-shot' = 'service'): void {
  // A command's own output is its message on the terminal; its log lines go to the file only.
  configureLogging(
    kind === 'service' ? config.log : { ...config.log, console: false, rotation: 'external' },
  );
  registerSecret(config.jwt.secret);
  registerSecret(config.db.password);
}

export function configureLogging(options: LoggerOptions): void {
  mkdirSync(options.dir, { recursive: true });
  const filename = path.join(options.dir, options.fileName ?? 'backend.log');
  const rotation = options.rotation ?? (process.env['pm_id'] === undefined ? 'self' : 'external');
  const layout = { type: options.layout ?? 'backend' };
  const file =
    rotation === 'self'
      ? { type: 'file', filename, maxLogSize: options.maxBytes, backups: options.backups, layout }
      : { type: reopeningFileAppender, filename, layout };
  const appenders: Record<string, log4js.Appender> = { file: file as log4js.Appender };
  if (options.console) appenders['console'] = { type: 'stdout', layout };

  log4js.configure({
    appenders,
    categories: { default: { appenders: Object.keys(appenders), level: options.level } },
    // Under PM2 the cluster master is PM2 itself: every process writes its own lines.
    disableClustering: true,
  });
  currentFile = filename;
}

export function getLogger(category: string): Logger {
  return log4js.getLogger(category);
}

/**
 * For a process whose configuration did not load, before it exits: the reason, in the
 * backend.log the configuration would have named (LOG_DIR, and the file limits where valid).
 */
export function logBadConfigurationSync(category: string, error: ConfigError, env: Env = process.env): void {
  configureLogging({ ...readLogFiles(new EnvReader(env)), level: 'info', console: false });
  logFatalSync(category, error.message);
}

/**
 * For the moment before exit: appended synchronously, because under PM2 cluster mode
 * asynchronous output written right before process.exit() is lost.
 */
export function logFatalSync(category: string, ...data: unknown[]): void {
  logSync(category, 'FATAL', ...data);
}

/** As logFatalSync, at another level: for a line written just before an exit that is not a failure. */
export function logSync(category: string, level: 'WARN' | 'FATAL', ...data: unknown[]): void {
  const line = `${formatLine(new Date(), category, level, data)}\n`;
  try {
    if (currentFile) appendFileSync(currentFile, line);
  } finally {
    process.stderr.write(line);
  }
}

/** Flushes and closes every appender. */
export function shutdownLogging(): Promise<void> {
  return new Promise((resolve) => log4js.shutdown(() => resolve()));
}
