// Log output of a process that PM2 runs. ecosystem.config.js points each app's PM2 log files
// (out_file, error_file) at the project's own file (backend.log, supervisor.log), so what PM2
// users rely on works on that file: `pm2 logs` and `pm2 monit` show each line live (PM2's bus),
// `pm2 logs --nostream` prints the file's tail, `pm2 reloadLogs` reopens it after a rotation.
//
// - Fork mode (supervisor, backup): stdout is a pipe to the PM2 daemon, which writes the file
//   and feeds the bus. Writes to a pipe are synchronous on Linux, so nothing is lost at exit.
// - Cluster mode (api workers): PM2 replaces process.stdout.write with a write to a file stream
//   that `pm2 reloadLogs` destroys, dropping what is still queued in it (a rotation would lose
//   lines), plus one IPC message per write. So the lines are appended here to the same file,
//   gathered into one synchronous write per 10 ms (Node itself writes synchronously when stdout
//   is a file), and sent to the bus in one message of PM2's own form; `log:reload` reopens it.
import cluster from 'node:cluster';
import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * Lines are gathered for this long and written (and sent to PM2's bus) together: each message
 * on the bus costs CPU in the worker, the PM2 daemon and every bus subscriber (the supervisor),
 * so one write per event-loop turn was still measurably dearer than per 10 ms (docs/operations.md, "Logs").
 */
const BATCH_MS = 10;
/** Above this many queued characters the queue is written at once. */
const MAX_QUEUED_CHARS = 64 * 1024;

export interface LogOutput {
  /** Queues whole lines (each ending in \n); they are written together within BATCH_MS. */
  write(lines: string): void;
  /** Writes what is queued, then these lines, before returning: for the moment before exit. */
  writeNow(lines: string): void;
  /** Writes what is queued. */
  flush(): void;
  /** Flushes, and stops listening for PM2's messages. */
  close(): void;
}

/** True in a process started by PM2 (its id in the environment and PM2's IPC channel open). */
export function runsUnderPm2(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['pm_id'] !== undefined && typeof process.send === 'function';
}

/** PM2's bus message for a process's output (what PM2's own cluster container sends). */
interface Pm2LogMessage {
  readonly type: 'log:out' | 'log:err';
  readonly data: string;
}

/** Collects lines and hands them on once per BATCH_MS (or sooner past MAX_QUEUED_CHARS). */
abstract class TurnBatchedOutput implements LogOutput {
  private queued = '';
  private scheduled = false;

  write(lines: string): void {
    this.queued += lines;
    if (this.queued.length >= MAX_QUEUED_CHARS) {
      this.flush();
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      // Unreferenced: a pending batch does not keep a process alive; the exit hook writes it.
      setTimeout(() => {
        this.scheduled = false;
        this.flush();
      }, BATCH_MS).unref();
    }
  }

  writeNow(lines: string): void {
    this.flush();
    this.emit(lines, 'log:err');
  }

  flush(): void {
    if (this.queued === '') return;
    const text = this.queued;
    this.queued = '';
    this.emit(text, 'log:out');
  }

  close(): void {
    this.flush();
  }

  /** Writes the text synchronously; the type says how `pm2 logs` colours it. */
  protected abstract emit(text: string, type: Pm2LogMessage['type']): void;
}

/** Fork mode: the daemon reads the pipe, writes the app's out file and feeds the bus. */
class PipeOutput extends TurnBatchedOutput {
  constructor(private readonly writeStdout: (text: string) => void) {
    super();
  }

  protected emit(text: string): void {
    this.writeStdout(text);
  }
}

/** Cluster mode: the worker appends to the app's out file itself and sends the text to the bus. */
class ClusterFileOutput extends TurnBatchedOutput {
  private fd: number | undefined;
  private readonly onMessage = (message: unknown): void => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'log:reload') this.reopen();
  };

  /** file undefined: PM2 was told to keep no file (/dev/null); lines only go to the bus. */
  constructor(private readonly file: string | undefined) {
    super();
    this.fd = this.open();
    process.on('message', this.onMessage);
  }

  override close(): void {
    super.close();
    process.removeListener('message', this.onMessage);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  protected emit(text: string, type: Pm2LogMessage['type']): void {
    this.fd ??= this.open();
    if (this.fd !== undefined) {
      try {
        const bytes = Buffer.from(text, 'utf8');
        let written = 0;
        while (written < bytes.length) written += writeSync(this.fd, bytes, written);
      } catch {
        // A full or failing disk: the lines still reach `pm2 logs`; logging must not crash the worker.
      }
    }
    const message: Pm2LogMessage = { type, data: text };
    if (process.send && process.connected) process.send(message);
  }

  /** After a rotation (the supervisor calls `pm2 reloadLogs`): new lines go to the fresh file. */
  private reopen(): void {
    this.flush();
    const next = this.open();
    if (next === undefined) return;
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = next;
  }

  private open(): number | undefined {
    if (this.file === undefined) return undefined;
    try {
      return openSync(this.file, 'a');
    } catch {
      return undefined;
    }
  }
}

/** The spellings PM2 itself takes for "no log file". */
const isNullPath = (file: string | undefined): boolean =>
  file === undefined || file === '' || file === '/dev/null' || file.includes('NULL');

/**
 * The output for this PM2 process. writeStdout writes to the real stdout (taken before
 * captureStandardStreams replaces process.stdout.write).
 */
export function createPm2Output(writeStdout: (text: string) => void, env: NodeJS.ProcessEnv = process.env): LogOutput {
  if (!cluster.isWorker) return new PipeOutput(writeStdout);
  const file = env['pm_out_log_path'];
  return new ClusterFileOutput(isNullPath(file) ? undefined : file);
}

/**
 * Everything else written to process.stdout or process.stderr (PM2's own `Reloading log...`
 * after `pm2 reloadLogs`, a library's console.log, Node's warnings) becomes lines of the log's
 * format through toLines and goes the same way as the log lines, so the file keeps one format.
 * Returns a function that puts both streams back.
 */
export function captureStandardStreams(
  output: LogOutput,
  toLines: (text: string, stream: 'stdout' | 'stderr') => string,
): () => void {
  const originals = { stdout: process.stdout.write, stderr: process.stderr.write };
  const capture = (stream: 'stdout' | 'stderr'): typeof process.stdout.write =>
    ((chunk: string | Uint8Array, encodingOrDone?: BufferEncoding | ((error?: Error | null) => void), done?: (error?: Error | null) => void): boolean => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      const lines = toLines(text, stream);
      if (lines !== '') output.write(lines);
      const callback = typeof encodingOrDone === 'function' ? encodingOrDone : done;
      if (callback) process.nextTick(callback);
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  return () => {
    process.stdout.write = originals.stdout;
    process.stderr.write = originals.stderr;
  };
}

/**
 * PM2's cluster container prints an uncaught exception's stack and an unhandled rejection raw
 * into the out/err file itself, bypassing process.stderr; the service logs both itself, in
 * format (lifecycle.ts), so PM2's printers would only add unformatted duplicates to backend.log.
 * Node's own last-resort printing (to the daemon's pm2.log) stays for a process without handlers.
 */
export function removePm2ExceptionPrinters(): void {
  if (!cluster.isWorker) return;
  // PM2's process container names its listener function so.
  const isPm2Printer = (listener: { name: string }): boolean => listener.name === 'uncaughtListener';
  for (const listener of process.listeners('uncaughtException')) {
    if (isPm2Printer(listener)) process.removeListener('uncaughtException', listener);
  }
  for (const listener of process.listeners('unhandledRejection')) {
    if (isPm2Printer(listener)) process.removeListener('unhandledRejection', listener);
  }
}
