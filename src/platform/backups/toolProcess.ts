// One run of a MariaDB/MySQL tool (the dump tool for a backup, the client for a restore), watched:
// credentials in an option file, its exit code, the end of what it said on stderr (for the error
// message), a bound on its run time, and a way to stop it from outside.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { DatabaseConfig } from '../config';
import { asError } from '../util/errors';
import { type ClientTool, findTool, withOptionFile } from './clientTools';

/** Keeps the last few KiB a stream said; a tool's error is at the end, and the rest can be long. */
class OutputTail {
  private kept = '';

  constructor(stream: Readable, private readonly limit = 4096) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.kept = (this.kept + chunk).slice(-this.limit);
    });
  }

  text(): string {
    // One line per line of output, trimmed, blank ones dropped (a `\s*\n\s*` pattern would
    // backtrack on long runs of whitespace).
    return this.kept
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '')
      .join(' | ');
  }
}

export interface RunLimits {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Resolves with the tool's exit code once it has ended. Rejects when it could not start, ran past
 * the time limit, or was aborted; in the last two cases it is killed first.
 */
function runTool(child: ChildProcess, name: string, limits: RunLimits): Promise<number> {
  return new Promise((resolve, reject) => {
    let stopReason: string | undefined;
    const stop = (reason: string): void => {
      stopReason ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop(`${name} ran longer than ${Math.round(limits.timeoutMs / 1000)} s`), limits.timeoutMs);
    const onAbort = (): void => stop(`${name} was stopped: ${String(limits.signal?.reason ?? 'aborted')}`);
    if (limits.signal?.aborted) onAbort();
    limits.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      limits.signal?.removeEventListener('abort', onAbort);
    };
    child.once('error', (error) => {
      done();
      reject(new Error(`${name} could not run: ${error.message}`));
    });
    // 'close', not 'exit': the output streams have ended too.
    child.once('close', (code, signal) => {
      done();
      if (stopReason !== undefined) reject(new Error(stopReason));
      else resolve(code ?? (signal ? 128 : 1));
    });
  });
}

/** The tool's stdout goes to `output`, or `input` feeds its stdin; each resolves once done. */
export type ToolStream =
  | { readonly output: (stdout: Readable) => Promise<void> }
  | { readonly input: (stdin: Writable) => Promise<void> };

export interface ToolOutcome {
  /** The binary that ran, e.g. `mariadb-dump`. */
  readonly tool: string;
  readonly exitCode: number;
  /** The end of what it said on stderr, on one line. */
  readonly stderr: string;
  /** Why the stream to or from it failed, if it did. */
  readonly streamError: Error | undefined;
}

/**
 * Runs a client tool against `db` with the credentials in a private option file, its stdin or
 * stdout connected to `stream`, and waits for both to end. Rejects only when the tool could not
 * run, ran too long or was stopped: a non-zero exit and a failed stream are for the caller to
 * weigh, since which one explains the other depends on the direction.
 */
export async function runClientTool(
  kind: ClientTool,
  db: DatabaseConfig,
  args: readonly string[],
  stream: ToolStream,
  limits: RunLimits,
): Promise<ToolOutcome> {
  const tool = findTool(kind);
  return withOptionFile(db, async (optionFile) => {
    const child = spawn(tool, [`--defaults-extra-file=${optionFile}`, ...args], { stdio: 'pipe' });
    const stderr = new OutputTail(child.stderr);
    let streaming: Promise<void>;
    if ('input' in stream) {
      child.stdout.resume();
      streaming = stream.input(child.stdin);
    } else {
      child.stdin.end();
      streaming = stream.output(child.stdout);
    }
    const [exit, streamed] = await Promise.allSettled([runTool(child, tool, limits), streaming]);
    if (exit.status === 'rejected') throw exit.reason;
    const streamError = streamed.status === 'rejected' ? asError(streamed.reason) : undefined;
    return { tool, exitCode: exit.value, stderr: stderr.text(), streamError };
  });
}
