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
//   is a file), and sent to the bus in one message of PM2's own form per 100 ms; `log:reload`
//   reopens the file.
import cluster from 'node:cluster';
import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * Lines are gathered for this long and written together: a write per line (or per event-loop
 * turn) was measurably dearer. It also bounds what a worker killed by SIGKILL loses of its file.
 */
const BATCH_MS = 10;
/**
 * An api worker sends its lines to PM2's bus once per this long. Each bus message has a fixed
 * cost in the worker, the PM2 daemon and every bus subscriber (the supervisor) whatever its
 * size: with one message per 10 ms, GET /api/me cost ~35 µs of daemon and ~27 µs of supervisor
 * CPU per request; per 100 ms, ~12 and ~8, and the worker ~60 µs less (1,550 → 2,090 req/s;
 * docs/benchmarks.md, "Where the request path's time goes"). `pm2 logs` shows the lines at most
 * this much later; the file gets them every BATCH_MS.
 */
const BUS_BATCH_MS = 100;
/** Above this many queued characters the queue is written at once. */
const MAX_QUEUED_CHARS = 64 * 1024;

export interface LogOutput {
  /** Queues whole lines (each ending in \n); they are written together within BATCH_MS (the bus: BUS_BATCH_MS). */
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

/** Text collected and handed to `deliver` once per `ms` (or sooner past MAX_QUEUED_CHARS). */
class Batch {
  private queued = '';
  private scheduled = false;

  constructor(
    private readonly ms: number,
    private readonly deliver: (text: string) => void,
  ) {}

  add(text: string): void {
    this.queued += text;
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
      }, this.ms).unref();
    }
  }

  flush(): void {
    if (this.queued === '') return;
    const text = this.queued;
    this.queued = '';
    this.deliver(text);
  }
}

/** Fork mode: the daemon reads the pipe, writes the app's out file and feeds the bus. */
class PipeOutput implements LogOutput {
  private readonly batch: Batch;

  constructor(private readonly writeStdout: (text: string) => void) {
    this.batch = new Batch(BATCH_MS, writeStdout);
  }

  write(lines: string): void {
    this.batch.add(lines);
  }

  writeNow(lines: string): void {
    this.batch.flush();
    this.writeStdout(lines);
  }

  flush(): void {
    this.batch.flush();
  }

  close(): void {
    this.flush();
  }
}

/** Cluster mode: the worker appends to the app's out file itself and sends the text to the bus. */
class ClusterFileOutput implements LogOutput {
  private fd: number | undefined;
  private readonly fileBatch = new Batch(BATCH_MS, (text) => this.append(text));
  private readonly busBatch = new Batch(BUS_BATCH_MS, (text) => this.send(text, 'log:out'));
  private readonly onMessage = (message: unknown): void => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'log:reload') this.reopen();
  };

  /** file undefined: PM2 was told to keep no file (/dev/null); lines only go to the bus. */
  constructor(private readonly file: string | undefined) {
    this.fd = this.open();
    process.on('message', this.onMessage);
  }

  write(lines: string): void {
    this.fileBatch.add(lines);
    this.busBatch.add(lines);
  }

  writeNow(lines: string): void {
    this.flush();
    this.append(lines);
    this.send(lines, 'log:err');
  }

  flush(): void {
    this.fileBatch.flush();
    this.busBatch.flush();
  }

  close(): void {
    this.flush();
    process.removeListener('message', this.onMessage);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Appends synchronously to the app's out file. */
  private append(text: string): void {
    this.fd ??= this.open();
    if (this.fd === undefined) return;
    try {
      const bytes = Buffer.from(text, 'utf8');
      let written = 0;
      while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    } catch {
      // A full or failing disk: the lines still reach `pm2 logs`; logging must not crash the worker.
    }
  }

  /** To PM2's bus, for `pm2 logs`; the type says how it colours the text. */
  private send(text: string, type: Pm2LogMessage['type']): void {
    const message: Pm2LogMessage = { type, data: text };
    if (process.send && process.connected) process.send(message);
  }

  /** After a rotation (the supervisor calls `pm2 reloadLogs`): new lines go to the fresh file. */
  private reopen(): void {
    this.fileBatch.flush();
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
