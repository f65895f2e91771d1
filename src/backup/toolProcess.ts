// A child process of the MariaDB/MySQL tools, watched: its exit code, the end of what it said on
// stderr (for the error message), a bound on its run time, and a way to stop it from outside.
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';

/** Keeps the last few KiB a stream said; a tool's error is at the end, and the rest can be long. */
export class OutputTail {
  private kept = '';

  constructor(stream: Readable, private readonly limit = 4096) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.kept = (this.kept + chunk).slice(-this.limit);
    });
  }

  text(): string {
    return this.kept.trim().replace(/\s*\n\s*/g, ' | ');
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
export function runTool(child: ChildProcess, name: string, limits: RunLimits): Promise<number> {
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
