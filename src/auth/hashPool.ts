// scrypt on a few dedicated threads instead of libuv's pool. Each scrypt takes 16 MiB; glibc
// keeps that memory in the arena of whichever thread ran it, so spread over libuv's four threads
// it costs 64 MiB per process for good (measured), and it competes with file and DNS work.
// On our own threads it costs one arena each, and the number of them bounds the concurrency.
import { Worker } from 'node:worker_threads';

interface ScryptJob {
  readonly password: string;
  readonly salt: Buffer;
  readonly keyLength: number;
  readonly n: number;
  readonly r: number;
  readonly p: number;
}

// Plain JavaScript evaluated in the thread: no file to find, in dist/ or under tsx alike.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
parentPort.on('message', ({ password, salt, keyLength, n, r, p }) => {
  try {
    const key = scryptSync(password, Buffer.from(salt), keyLength, { N: n, r, p, maxmem: 256 * n * r + 1048576 });
    parentPort.postMessage({ key });
  } catch (error) {
    parentPort.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
});
`;

interface Pending {
  readonly job: ScryptJob;
  readonly resolve: (key: Buffer) => void;
  readonly reject: (error: Error) => void;
}

class HashThread {
  private worker: Worker;
  private closing = false;
  current: Pending | undefined;

  constructor(private readonly onIdle: (thread: HashThread) => void) {
    this.worker = this.spawn();
  }

  run(task: Pending): void {
    this.current = task;
    this.worker.postMessage(task.job);
  }

  /** Ends the thread for good; a job still running on it fails. */
  close(): void {
    this.closing = true;
    void this.worker.terminate();
  }

  private spawn(): Worker {
    const worker = new Worker(THREAD_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 16 } });
    // Idle threads must not keep a draining process alive.
    worker.unref();
    worker.on('message', (message: { key?: Uint8Array; error?: string }) => {
      const task = this.finish();
      if (message.key) task?.resolve(Buffer.from(message.key));
      else task?.reject(new Error(`scrypt failed: ${message.error ?? 'unknown error'}`));
    });
    worker.on('error', (error) => this.finish()?.reject(error));
    worker.on('exit', () => {
      // A thread that died (it should not) is replaced; its job fails rather than hangs.
      this.finish()?.reject(new Error('scrypt thread exited'));
      if (!this.closing) this.worker = this.spawn();
    });
    return worker;
  }

  private finish(): Pending | undefined {
    const task = this.current;
    this.current = undefined;
    if (task) this.onIdle(this);
    return task;
  }
}

export class ScryptPool {
  private readonly threads: HashThread[] = [];
  private readonly idle: HashThread[] = [];
  private readonly queue: Pending[] = [];

  constructor(size: number) {
    for (let i = 0; i < Math.max(1, size); i++) this.threads.push(new HashThread((thread) => this.next(thread)));
    this.idle.push(...this.threads);
  }

  /** Ends every thread: for a pool being replaced by one of another size. */
  close(): void {
    for (const thread of this.threads) thread.close();
  }

  derive(job: ScryptJob): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const task = { job, resolve, reject };
      const thread = this.idle.pop();
      if (thread) thread.run(task);
      else this.queue.push(task);
    });
  }

  private next(thread: HashThread): void {
    const task = this.queue.shift();
    if (task) thread.run(task);
    else this.idle.push(thread);
  }
}
