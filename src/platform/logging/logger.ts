// log4js set-up: the backend.log line format, redaction, rotation and cluster-safe writing.
//
// Where the lines go:
// - under PM2: to PM2's log output only (pm2LogOutput.ts), whose files ecosystem.config.js sets
//   to backend.log and supervisor.log: each line is written once and `pm2 logs` shows it. The
//   supervisor rotates those files and calls `pm2 reloadLogs` (see supervisor/logFiles.ts);
// - the service alone (no PM2): a file log4js rolls itself by size (and the console in development);
// - one-shot commands (migrate, restore, the migration step of npm start): append to backend.log,
//   never rotate, and reopen it within a second when the supervisor renames it.
// Every process appends whole lines (O_APPEND keeps them whole).
import { appendFileSync, mkdirSync, stat } from 'node:fs';
import path from 'node:path';
import { format } from 'node:util';
import log4js from 'log4js';
import { type Config, type ConfigError, type Env, EnvReader, type LogLevel, readLogFiles } from '../config';
import { captureStandardStreams, createPm2Output, type LogOutput, removePm2ExceptionPrinters, runsUnderPm2 } from './pm2LogOutput';
import { NO_SECRETS, redact, secretsToMask } from './redact';
import { printable } from '../util/clientText';

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
  /** Masked wherever they appear in a line (secretsToMask: the configuration's secrets). */
  readonly secrets?: readonly string[];
}

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `2025-12-17 10:30:05`, local time, as the line format in docs/operations.md shows. */
function formatTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** Longest message on a line, in printed characters; more is cut with a visible marker. */
const MAX_MESSAGE_CHARS = 8 * 1024;
/** Longest stack frame line, and most frames, printed after an error's line. */
const MAX_FRAME_CHARS = 1024;
const MAX_FRAMES = 50;

/**
 * An error argument is printed as its message on the line and its stack on the lines after.
 * Logged values carry client text, so every unprintable character in them is escaped (`\n`,
 * `\x1b`, `\u2028`) and the line is bounded: a line ends only where the logger ends it, and the
 * only lines that follow it are an error's stack, each frame indented, so nothing a client
 * sends can start a line.
 */
function formatData(data: readonly unknown[], secrets: readonly string[]): string {
  const parts: string[] = [];
  const stacks: string[] = [];
  for (const item of data) {
    if (item instanceof Error) {
      parts.push(`${item.name}: ${item.message}`);
      stacks.push(stackLines(item, secrets));
    } else {
      parts.push(typeof item === 'string' ? item : format('%o', item));
    }
  }
  // Redacted before it is cut and escaped: a secret that straddles the cut, or holds a control
  // character, is still recognised whole.
  const line = printable(redact(parts.join(' '), secrets), MAX_MESSAGE_CHARS);
  return stacks.length > 0 ? `${line}\n${stacks.join('\n')}` : line;
}

/**
 * An error's stack as lines: its header (`Name: message`, which may hold client text and line
 * breaks) escaped onto one line, then each frame escaped on a line of its own, indented.
 */
function stackLines(error: Error, secrets: readonly string[]): string {
  const stack = typeof error.stack === 'string' ? error.stack : '';
  const header = error.message === '' ? error.name : `${error.name}: ${error.message}`;
  // V8 begins the stack with the header as it was at construction; when it has changed since,
  // the frames start at the first "at" line.
  const firstFrame = stack.indexOf('\n    at ');
  const frames = stack.startsWith(header) ? stack.slice(header.length) : firstFrame === -1 ? '' : stack.slice(firstFrame);
  const lines = [printable(redact(header, secrets), MAX_MESSAGE_CHARS)];
  for (const frame of frames.split('\n')) {
    if (frame.trim() === '') continue;
    if (lines.length > MAX_FRAMES) {
      lines.push('    …(more frames left out)');
      break;
    }
    const escaped = printable(redact(frame, secrets), MAX_FRAME_CHARS);
    lines.push(/^\s/.test(escaped) ? escaped : `    ${escaped}`);
  }
  return lines.join('\n');
}

export function formatLine(date: Date, category: string, level: string, data: readonly unknown[], secrets: readonly string[] = NO_SECRETS): string {
  return `${formatTimestamp(date)} - ${category} - ${level} - ${formatData(data, secrets)}`;
}

/** What configureLogging puts in a layout's log4js configuration: the layout's name and what it masks. */
interface LayoutConfig {
  readonly type: 'backend' | 'supervisor';
  readonly secrets: readonly string[];
}

/**
 * log4js keeps its layouts by name for the whole process; these two read the secrets to mask
 * from their configuration, so each configuration's layouts hold their own. Registered by
 * configureLogging (again each time, which replaces them with the same), not at import.
 */
function registerLayouts(): void {
  log4js.addLayout('backend', (config: LayoutConfig) => {
    const { secrets } = config;
    return (event: log4js.LoggingEvent) => formatLine(event.startTime, event.categoryName, event.level.levelStr, event.data, secrets);
  });
  // supervisor.log: as backend.log, except that the crash-loop line begins with CRITICAL (docs/operations.md).
  log4js.addLayout('supervisor', (config: LayoutConfig) => {
    const { secrets } = config;
    return (event: log4js.LoggingEvent) =>
      event.level.levelStr === 'FATAL'
        ? `CRITICAL ${formatTimestamp(event.startTime)} - ${event.categoryName} - ${formatData(event.data, secrets)}`
        : formatLine(event.startTime, event.categoryName, event.level.levelStr, event.data, secrets);
  });
}

/** Text written to stdout or stderr by something else than log4js, as lines of the log's format. */
function foreignTextAsLines(text: string, stream: 'stdout' | 'stderr', secrets: readonly string[]): string {
  let lines = '';
  for (const piece of text.split('\n')) {
    if (piece.trim() === '') continue;
    lines += `${formatLine(new Date(), stream, stream === 'stderr' ? 'WARN' : 'INFO', [piece], secrets)}\n`;
  }
  return lines;
}

/** A log4js appender writing the layout's lines to PM2's log output. */
function pm2OutputAppender(output: LogOutput) {
  return {
    configure(config: { layout: { type: string } }, layouts: { layout: (type: string, config: object) => (event: log4js.LoggingEvent) => string }) {
      const layout = layouts.layout(config.layout.type, config.layout);
      const append = (event: log4js.LoggingEvent): void => output.write(`${layout(event)}\n`);
      append.shutdown = (done: () => void): void => {
        output.flush();
        done();
      };
      return append;
    },
  };
}

/** Where logSync writes: the line must be stored before the process exits. */
interface SyncSink {
  /** What the configuration's layouts mask, masked in these lines too. */
  readonly secrets: readonly string[];
  writeNow(line: string): void;
  /** Undoes what configuring this sink changed in the process (captured streams, listeners). */
  close(): void;
}

/** A PM2 process: log4js writes to PM2's output only, and so does anything else on stdout/stderr. */
function configurePm2Logging(options: LoggerOptions, layout: LayoutConfig): SyncSink {
  const realStdoutWrite = process.stdout.write.bind(process.stdout);
  const output = createPm2Output((text) => void realStdoutWrite(text));
  const restoreStreams = captureStandardStreams(output, (text, stream) => foreignTextAsLines(text, stream, layout.secrets));
  removePm2ExceptionPrinters();
  // Lines still queued at a bare process.exit() are written then (synchronously).
  const flushAtExit = (): void => output.flush();
  process.on('exit', flushAtExit);
  log4js.configure({
    appenders: { pm2: { type: pm2OutputAppender(output), layout } as unknown as log4js.Appender },
    categories: { default: { appenders: ['pm2'], level: options.level } },
    disableClustering: true,
  });
  return {
    secrets: layout.secrets,
    writeNow: (line) => output.writeNow(line),
    close: () => {
      process.removeListener('exit', flushAtExit);
      output.close();
      restoreStreams();
    },
  };
}

/**
 * log4js's file appender plus a cheap inode check: when the file was renamed or removed by
 * the rotating process, reopen it so new lines go to the fresh file.
 */
const reopeningFileAppender = Object.freeze({
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
});

/**
 * The one process-wide singleton of the logging, because log4js makes its configuration one:
 * log4js.configure() replaces, for every logger of every module in the process, where lines go
 * and how they are laid out. The synchronous writer for the last lines before an exit (logSync)
 * must write where that configuration writes and mask what it masks, so it is replaced with it,
 * by configureLogging, and nowhere else.
 */
let syncSinkOfLog4jsConfiguration: SyncSink | undefined;

/**
 * Logging for a process that has loaded its configuration: the configured files, and the
 * configuration's secrets known to the redactor before the first line can carry one.
 */
export function configureLoggingFor(
  config: Pick<Config, 'log' | 'db' | 'jwt' | 'observability'>,
  kind: 'service' | 'one-shot' = 'service',
): void {
  // A command's own output is its message on the terminal; its log lines go to the file only.
  const secrets = secretsToMask([config.jwt.secret, config.db.password, config.observability.metricsToken]);
  configureLogging(
    kind === 'service' ? { ...config.log, secrets } : { ...config.log, console: false, rotation: 'external', secrets },
  );
}

/** Configures log4js for the whole process (see syncSinkOfLog4jsConfiguration), replacing any earlier configuration. */
export function configureLogging(options: LoggerOptions): void {
  syncSinkOfLog4jsConfiguration?.close();
  registerLayouts();
  const layout: LayoutConfig = { type: options.layout ?? 'backend', secrets: options.secrets ?? NO_SECRETS };
  if (runsUnderPm2()) {
    syncSinkOfLog4jsConfiguration = configurePm2Logging(options, layout);
    return;
  }
  mkdirSync(options.dir, { recursive: true });
  const filename = path.join(options.dir, options.fileName ?? 'backend.log');
  const rotation = options.rotation ?? (process.env['pm_id'] === undefined ? 'self' : 'external');
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
  syncSinkOfLog4jsConfiguration = {
    secrets: layout.secrets,
    writeNow: (line) => {
      try {
        appendFileSync(filename, line);
      } finally {
        process.stderr.write(line);
      }
    },
    close: () => undefined,
  };
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
 * For the moment before exit: written synchronously (with any lines still queued before it),
 * because asynchronous output written right before process.exit() is lost. Under PM2 the line
 * is stored once, in the app's log file, and shown by `pm2 logs`; otherwise it is appended to
 * the file and printed on stderr.
 */
export function logFatalSync(category: string, ...data: unknown[]): void {
  logSync(category, 'FATAL', ...data);
}

/** As logFatalSync, at another level: for a line written just before an exit that is not a failure. */
export function logSync(category: string, level: 'WARN' | 'FATAL', ...data: unknown[]): void {
  const sink = syncSinkOfLog4jsConfiguration;
  const line = `${formatLine(new Date(), category, level, data, sink?.secrets)}\n`;
  if (sink) sink.writeNow(line);
  else process.stderr.write(line);
}

/** Flushes and closes every appender. */
export function shutdownLogging(): Promise<void> {
  return new Promise((resolve) => log4js.shutdown(() => resolve()));
}
